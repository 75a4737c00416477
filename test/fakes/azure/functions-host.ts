/**
 * The fake Functions host of a launch test: the function app's package comes from azurite (the blob of
 * WEBSITE_RUN_FROM_PACKAGE, fetched only if the app's identity holds a blob data role on the account, as
 * the host's identity-based fetch needs), and its functions are those its code registers when the Node
 * worker loads package.json's main with `@azure/functions-core` stubbed. So the names come from the
 * bundle itself.
 */
import { strFromU8, strToU8, unzipSync } from "fflate";
import { BUILT_IN_ROLES } from "./authorization";
import type { Azurite } from "./azurite";
import type { AzureCloud } from "./cloud";
import type { FunctionSite } from "./web";

/** What the Node worker registers from a package: it loads package.json's main with its core module. */
export function registeredFunctions(zip: Uint8Array): string[] {
  const files = unzipSync(zip);
  const main = JSON.parse(strFromU8(files["package.json"] ?? strToU8("{}"))).main as string | undefined;
  if (!files["host.json"] || !main || !files[main]) return [];
  const names: string[] = [];
  const core = {
    setProgrammingModel: () => {},
    registerHook: () => ({ dispose: () => {} }),
    registerFunction: (metadata: { name: string }) => (names.push(metadata.name), { dispose: () => {} }),
  };
  const load = (id: string) => (id === "@azure/functions-core" ? core : require(id));
  const exports = {};
  new Function("require", "module", "exports", strFromU8(files[main]))(load, { exports }, exports);
  return names;
}

/** Makes azurite the cloud's blob data plane and runs the fake host over it. */
export function connectAzurite(cloud: AzureCloud, azurite: Azurite): void {
  cloud.storage.blobEndpoint = azurite.blobEndpoint;
  cloud.storage.onContainer = async (account, container, change) => {
    const client = azurite.service(account).getContainerClient(container);
    await (change === "create" ? client.create() : client.delete());
  };
  cloud.web.discoverFunctions = async (site: FunctionSite) => {
    const url = site.appSettings.WEBSITE_RUN_FROM_PACKAGE;
    const identity = cloud.msi.get(site.appSettings.WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID ?? "");
    if (!url || !identity) return [];
    const [account, container, ...blob] = new URL(url).pathname.split("/").slice(1);
    const accountId = String(cloud.storage.accounts.get(account!)?.resource.id);
    const mayRead = cloud.rbac
      .forPrincipal(identity.principalId)
      .some(
        (a) =>
          accountId.toLowerCase().startsWith(a.scope.toLowerCase()) &&
          a.roleDefinitionId.endsWith(BUILT_IN_ROLES["Storage Blob Data Owner"]),
      );
    if (!mayRead) return [];
    const zip = await azurite
      .service(account!)
      .getContainerClient(container!)
      .getBlobClient(blob.join("/"))
      .downloadToBuffer();
    return registeredFunctions(zip);
  };
}

/** Empties azurite's containers of an account between tests. */
export async function emptyAzurite(azurite: Azurite, account: string): Promise<void> {
  for await (const container of azurite.service(account).listContainers())
    await azurite.service(account).deleteContainer(container.name);
}
