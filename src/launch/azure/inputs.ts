/** Everything an Azure apply needs besides the spec: the subscription, the tenant, the image, its settings. */
import type { AzureClusterSpec } from "../../cluster/schema";
import { invalidInput } from "../../errors";
import { IMAGE_ID_TAG } from "../../publish/azure/plan";
import { bakeOf, imageClusterSettings } from "../manifest";
import type { AzureClients } from "./clients";
import { ifFound, type AzureInputs } from "./context";

/** The subscription: the spec's, else AZURE_SUBSCRIPTION_ID (as the Azure CLI and SDKs name it). */
export function subscriptionOf(spec: AzureClusterSpec, specPath: string): string {
  const subscription = spec.subscription ?? process.env.AZURE_SUBSCRIPTION_ID;
  if (!subscription)
    throw invalidInput(
      `${specPath}: subscription: expected a subscription id in the cluster file or in AZURE_SUBSCRIPTION_ID`,
    );
  return subscription;
}

/**
 * The Entra ID tenant the vault trusts: AZURE_TENANT_ID, else the `tid` claim of the credential's own
 * token for Resource Manager (the tenant the operator signed in to).
 */
export async function tenantOf(clients: AzureClients): Promise<string> {
  if (process.env.AZURE_TENANT_ID) return process.env.AZURE_TENANT_ID;
  const token = await clients.credential.getToken("https://management.azure.com/.default");
  const payload = token?.token.split(".")[1];
  let tid: unknown;
  try {
    tid = payload ? JSON.parse(Buffer.from(payload, "base64url").toString()).tid : undefined;
  } catch {
    tid = undefined;
  }
  if (typeof tid !== "string")
    throw invalidInput(
      "the credential's token names no tenant: set AZURE_TENANT_ID to the tenant of the subscription",
    );
  return tid;
}

export async function resolveAzureInputs(
  clients: AzureClients,
  spec: AzureClusterSpec,
  specPath: string,
): Promise<AzureInputs> {
  // Local first: the image spec or the bake's tree, before any Azure call.
  const baked = spec.image.manifest ? bakeOf(specPath, spec.image.manifest) : undefined;
  const cluster = imageClusterSettings(spec, specPath, baked);
  let image: string;
  if (baked) {
    const { imageId } = baked.manifest;
    // The publish tags each managed image with its bake's id (src/publish/azure/plan.ts).
    const tagged = [];
    for await (const found of clients.compute.images.list())
      if (found.tags?.[IMAGE_ID_TAG] === imageId) tagged.push(found);
    if (tagged.length !== 1)
      throw invalidInput(
        `image.manifest: expected one managed image tagged ${IMAGE_ID_TAG}=${imageId} in subscription ${clients.subscription}, found ${tagged.length} (publish it with bake-image --target azure)`,
      );
    image = tagged[0]!.id!;
  } else {
    image = spec.image.id!;
    const [, , subscription, , group, , , , name] = image.split("/");
    // A managed image serves VMs of its own subscription only.
    if (subscription!.toLowerCase() !== clients.subscription.toLowerCase())
      throw invalidInput(
        `image.id: managed image ${image} is in subscription ${subscription}, not the cluster's ${clients.subscription}`,
      );
    const found = await ifFound(() => clients.compute.images.get(group!, name!));
    if (!found)
      throw invalidInput(`image.id: managed image ${image} does not exist (or this identity cannot see it)`);
  }
  return {
    spec,
    subscription: clients.subscription,
    tenant: await tenantOf(clients),
    image,
    discoveryDomain: cluster.discoveryDomain,
  };
}
