/**
 * A VM scale set per role, Flexible orchestration: the model every member is made from, and its capacity.
 * Azure never replaces a Flexible member on its own (the upgrade policy is Manual), so apply rolls out a
 * changed model itself: it deletes a batch of outdated members (masters one at a time), raises the
 * capacity back, and waits until the new members run, and for masters until each passes the launch gate
 * (a version of the vault's `launch-ready` secret tagged with its vmId, set once it votes and serves).
 *
 * A member's model is the scale set's `kubebake:model` tag as it was when the member was made (Azure
 * copies the scale set's tags to its members): the hash of what kubebake sent. Custom data is never
 * answered back by Azure, so the hash is the only way to see that it changed. A member without the tag
 * (not verified against Azure: should it not copy tags) is judged by what it does answer, its image and
 * size, so that it is never replaced again and again.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import type { Role } from "../../discover/names";
import { isPlanned } from "../changes";
import { foreign } from "../ownership";
import { waitFor } from "../wait";
import { ifFound, type AzureContext } from "./context";
import {
  capacityOf,
  LAUNCH_GATE_SECRET,
  machineProfile,
  MODEL_TAG,
  OWNER_TAG,
  resourceGroupName,
  ROLE_TAG,
  scaleSetName,
  tagsFor,
  userData,
  type RoleFacts,
  type ScaleSetLinks,
} from "./desired";
import { secretClient, type ClusterVault } from "./vault";

interface Member {
  name: string;
  vmId?: string;
  model?: string;
  image?: string;
  vmSize?: string;
  provisioning?: string;
  power?: string;
}

/** An OpenSSH ed25519 public key whose private half is dropped: Azure wants a key, nobody may use it. */
function unusableKey(): string {
  const { publicKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  // The wire form: each field is its length (4 bytes, big-endian) and its bytes.
  const sized = (bytes: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    return Buffer.concat([length, bytes]);
  };
  const blob = Buffer.concat([sized(Buffer.from("ssh-ed25519")), sized(raw)]);
  return `ssh-ed25519 ${blob.toString("base64")} kubebake-no-login`;
}

const rolloutBatch = (ctx: AzureContext, role: Role, size: number) =>
  role === "masters" ? 1 : Math.max(1, Math.floor((size * ctx.inputs.spec.rollout.batchPercent) / 100));

/** What a member made from the scale set's current model is. */
export interface ScaleSetModel {
  hash: string;
  image: string;
  vmSize: string;
}

const onModel = (member: Member, model: ScaleSetModel) =>
  member.model !== undefined
    ? member.model === model.hash
    : member.image?.toLowerCase() === model.image.toLowerCase() && member.vmSize === model.vmSize;

/** The role's scale set, made or brought to the spec; answers its model. */
export async function ensureScaleSet(
  ctx: AzureContext,
  role: Role,
  links: ScaleSetLinks,
  facts: RoleFacts,
): Promise<ScaleSetModel> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const group = resourceGroupName(spec);
  const name = scaleSetName(spec.name, role);
  const found = isPlanned(clusterId)
    ? undefined
    : await ifFound(() => clients.compute.virtualMachineScaleSets.get(group, name));
  if (found && found.tags?.[OWNER_TAG] !== clusterId)
    throw foreign("scale set", name, found.tags?.[OWNER_TAG]);
  // Without a key in the spec, the one the scale set already has is kept (a new one each apply would
  // change the model and replace every node).
  const existingKey =
    found?.virtualMachineProfile?.osProfile?.linuxConfiguration?.ssh?.publicKeys?.[0]?.keyData;
  const sshKey = spec.sshPublicKey ?? existingKey ?? unusableKey();
  const profile = machineProfile(spec, role, links, userData(spec, role, facts), sshKey);
  const identity = { type: "UserAssigned" as const, userAssignedIdentities: { [links.identityId]: {} } };
  const model = createHash("sha256")
    // The VM size too: a member keeps the size it was made with, so a new size is a rollout.
    .update(
      JSON.stringify({
        profile,
        identity,
        zones: spec.network.zones ?? [],
        vmSize: spec.groups[role].vmSize,
      }),
    )
    .digest("hex")
    .slice(0, 16);
  const { min, max } = role === "minions" ? spec.groups.minions : { min: 0, max: Infinity };
  const current = found?.sku?.capacity;
  const capacity =
    role === "masters" || current === undefined
      ? capacityOf(spec, role)
      : Math.min(Math.max(current, min), max);
  // A scale set Azure left Failed is written again, whatever it holds.
  const same =
    found &&
    found.provisioningState !== "Failed" &&
    found.tags?.[MODEL_TAG] === model &&
    found.sku?.name === spec.groups[role].vmSize &&
    found.sku?.capacity === capacity;
  const wanted = { hash: model, image: links.image, vmSize: spec.groups[role].vmSize };
  if (same) return wanted;
  await rec.make(
    {
      action: found ? "update" : "create",
      kind: "scale-set",
      name,
      detail: `${capacity} × ${spec.groups[role].vmSize}${found && found.tags?.[MODEL_TAG] !== model ? ", new model" : ""}`,
    },
    async () =>
      void (await clients.compute.virtualMachineScaleSets.beginCreateOrUpdateAndWait(group, name, {
        location: spec.location,
        tags: { ...tagsFor(spec, `scale-set-${role}`, clusterId), [ROLE_TAG]: role, [MODEL_TAG]: model },
        ...(spec.network.zones ? { zones: spec.network.zones } : {}),
        sku: { name: spec.groups[role].vmSize, tier: "Standard", capacity },
        identity,
        orchestrationMode: "Flexible",
        platformFaultDomainCount: 1,
        upgradePolicy: { mode: "Manual" },
        virtualMachineProfile: profile,
      })),
    undefined,
  );
  return wanted;
}

async function members(ctx: AzureContext, role: Role): Promise<Member[]> {
  const { clients, inputs } = ctx;
  const group = resourceGroupName(inputs.spec);
  const setId = `/subscriptions/${inputs.subscription}/resourceGroups/${group}/providers/Microsoft.Compute/virtualMachineScaleSets/${scaleSetName(inputs.spec.name, role)}`;
  const all: Member[] = [];
  for await (const vm of clients.compute.virtualMachines.list(group, {
    filter: `'virtualMachineScaleSet/id' eq '${setId}'`,
    expand: "instanceView",
  })) {
    const status = (prefix: string) =>
      vm.instanceView?.statuses?.find((s) => s.code?.startsWith(prefix))?.code?.slice(prefix.length);
    all.push({
      name: vm.name!,
      vmId: vm.vmId,
      model: vm.tags?.[MODEL_TAG],
      image: vm.storageProfile?.imageReference?.id,
      vmSize: vm.hardwareProfile?.vmSize,
      provisioning: status("ProvisioningState/") ?? vm.provisioningState?.toLowerCase(),
      power: status("PowerState/"),
    });
  }
  return all;
}

const running = (m: Member) => m.provisioning === "succeeded" && m.power === "running";
const leaving = (m: Member) => m.provisioning === "deleting";

/**
 * Replaces the members not on `model`, a batch at a time: delete the batch, raise the capacity back, wait
 * for the new members (and the launch gate of each new master) before the next batch.
 */
export async function rollOut(
  ctx: AzureContext,
  role: Role,
  model: ScaleSetModel,
  vault: ClusterVault,
): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const group = resourceGroupName(spec);
  const name = scaleSetName(spec.name, role);
  const current = isPlanned(clusterId) ? [] : await members(ctx, role).catch(() => []);
  const stale = current.filter((m) => !leaving(m) && !onModel(m, model));
  const live = current.filter((m) => !leaving(m)).length;
  const batch = rolloutBatch(ctx, role, Math.max(live, 1));
  if (rec.dryRun) {
    if (stale.length > 0)
      await rec.make(
        {
          action: "replace",
          kind: "instances",
          name,
          detail: `${stale.length} on the new model, ${batch} at a time`,
        },
        async () => {},
        undefined,
      );
    return;
  }
  for (let left = stale; left.length > 0;) {
    const now = left.slice(0, batch);
    await rec.make(
      { action: "replace", kind: "instances", name, detail: now.map((m) => m.name).join(", ") },
      async () => {
        const before = new Set((await members(ctx, role)).map((m) => m.name));
        // Flexible lowers the capacity by each member deleted; the update below raises it back.
        await clients.compute.virtualMachineScaleSets.beginDeleteInstancesAndWait(group, name, {
          instanceIds: now.map((m) => m.name),
        });
        await clients.compute.virtualMachineScaleSets.beginUpdateAndWait(group, name, {
          sku: { capacity: live },
        });
        const gate = role === "masters" ? ` and pass the launch gate (${LAUNCH_GATE_SECRET})` : "";
        await waitFor(
          ctx,
          `${name} to run its replacements${gate}`,
          spec.rollout.timeoutSeconds * 1000,
          async () => {
            const after = await members(ctx, role);
            const fresh = after.filter((m) => !before.has(m.name));
            if (fresh.length < now.length || !fresh.every((m) => running(m) && onModel(m, model)))
              return false;
            if (role !== "masters") return true;
            const ready = await gatePassed(ctx, vault);
            return fresh.every((m) => m.vmId !== undefined && ready.has(m.vmId));
          },
        );
      },
      undefined,
    );
    left = (await members(ctx, role)).filter((m) => !leaving(m) && !onModel(m, model));
  }
}

/** The vmIds of the masters that said they vote and serve (versions of the launch gate's secret). */
async function gatePassed(ctx: AzureContext, vault: ClusterVault): Promise<Set<string>> {
  const ready = new Set<string>();
  for await (const version of secretClient(ctx, vault.uri).listPropertiesOfSecretVersions(LAUNCH_GATE_SECRET))
    if (version.enabled !== false && version.tags?.vmId) ready.add(version.tags.vmId);
  return ready;
}
