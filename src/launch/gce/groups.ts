/**
 * A role's nodes: an instance template per content (templates are immutable) and a regional managed
 * instance group pointed at the current one. When the template changes, apply replaces the group's
 * instances itself, a batch at a time (masters one by one), waiting for each batch to run before the next.
 */
import type { Role } from "../../discover/names";
import { isPlanned } from "../changes";
import { ifFound } from "./clients";
import { completed, computeUrl, resourcePath, waitFor, type GceContext } from "./context";
import {
  describedAs,
  groupName,
  groupSize,
  LAUNCH_GATE_ATTRIBUTE,
  ownerIn,
  prefix,
  rolloutBatch,
  templateName,
  templateProperties,
  UPDATE_POLICY,
} from "./desired";
import type { NetworkLinks } from "./network";
import { foreign } from "./owner";

interface Group {
  name?: string | null;
  description?: string | null;
  targetSize?: number | null;
  fingerprint?: string | null;
  instanceTemplate?: string | null;
  versions?: { instanceTemplate?: string | null; name?: string | null }[] | null;
  updatePolicy?: { type?: string | null } | null;
  status?: { isStable?: boolean | null; versionTarget?: { isReached?: boolean | null } | null } | null;
}

interface Managed {
  instance?: string | null;
  currentAction?: string | null;
  instanceStatus?: string | null;
  version?: { instanceTemplate?: string | null } | null;
}

const templatePath = (project: string, name: string) =>
  `projects/${project}/global/instanceTemplates/${name}`;
const targetTemplate = (group: Group) =>
  resourcePath(group.versions?.[0]?.instanceTemplate ?? group.instanceTemplate);

/** The role's template for the spec as it is now: found by its content's name, or created. */
export async function ensureTemplate(ctx: GceContext, role: Role, links: NetworkLinks): Promise<string> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { project } = clients;
  const properties = templateProperties(inputs, clusterId, role, links);
  const name = templateName(inputs.spec.name, role, properties);
  const found = isPlanned(clusterId)
    ? undefined
    : (await ifFound(() => clients.templates.get({ project, instanceTemplate: name })))?.[0];
  if (found && ownerIn(found.description) !== clusterId)
    throw foreign("instance template", name, ownerIn(found.description));
  if (!found)
    await rec.make(
      {
        action: "create",
        kind: "instance-template",
        name,
        detail: `${properties.machineType}, ${inputs.image}`,
      },
      async () =>
        completed(
          ctx,
          await clients.templates.insert({
            project,
            instanceTemplateResource: {
              name,
              description: describedAs(inputs.spec, clusterId, `the ${role}' nodes`),
              properties: properties as never,
            },
          }),
          `create instance template ${name}`,
        ),
      undefined,
    );
  return templatePath(project, name);
}

async function readGroup(ctx: GceContext, role: Role): Promise<Group | undefined> {
  const { clients, inputs } = ctx;
  return (
    await ifFound(() =>
      clients.groups.get({
        project: clients.project,
        region: inputs.spec.region,
        instanceGroupManager: groupName(inputs.spec.name, role),
      }),
    )
  )?.[0] as Group | undefined;
}

/** The role's group at the spec's size on `template` (rollOut then replaces instances still on an older one). */
export async function ensureGroup(ctx: GceContext, role: Role, template: string): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const { project } = clients;
  const name = groupName(spec.name, role);
  const size = groupSize(spec, role);
  const found = isPlanned(clusterId) ? undefined : await readGroup(ctx, role);
  const versions = [{ name: "current", instanceTemplate: computeUrl(template) }];
  if (!found) {
    const zones = spec.network.zones?.map((zone) => ({
      zone: computeUrl(`projects/${project}/zones/${zone}`),
    }));
    await rec.make(
      {
        action: "create",
        kind: "instance-group",
        name,
        detail: `${size} × ${spec.groups[role].machineType}`,
      },
      async () =>
        completed(
          ctx,
          await clients.groups.insert({
            project,
            region: spec.region,
            instanceGroupManagerResource: {
              name,
              description: describedAs(spec, clusterId, `the ${role}`),
              baseInstanceName: name,
              versions,
              targetSize: size,
              ...(zones ? { distributionPolicy: { zones, targetShape: "EVEN" } } : {}),
              updatePolicy: UPDATE_POLICY,
            },
          }),
          `create instance group ${name}`,
        ),
      undefined,
    );
    return;
  }
  if (ownerIn(found.description) !== clusterId)
    throw foreign("instance group", name, ownerIn(found.description));
  const changes: string[] = [];
  const moved = targetTemplate(found) !== template;
  if (moved) changes.push(`template ${template.split("/").pop()}`);
  if (Number(found.targetSize) !== size) changes.push(`size ${found.targetSize} → ${size}`);
  if (found.updatePolicy?.type !== UPDATE_POLICY.type) changes.push(`update policy ${UPDATE_POLICY.type}`);
  if (changes.length > 0)
    await rec.make(
      { action: "update", kind: "instance-group", name, detail: changes.join(", ") },
      async () =>
        completed(
          ctx,
          await clients.groups.patch({
            project,
            region: spec.region,
            instanceGroupManager: name,
            instanceGroupManagerResource: {
              fingerprint: found.fingerprint,
              versions,
              targetSize: size,
              updatePolicy: UPDATE_POLICY,
            },
          }),
          `update instance group ${name}`,
        ),
      undefined,
    );
}

async function managedInstances(ctx: GceContext, role: Role): Promise<Managed[]> {
  const { clients, inputs } = ctx;
  const all: Managed[] = [];
  let pageToken: string | undefined;
  do {
    const [items, , page] = await clients.groups.listManagedInstances(
      {
        project: clients.project,
        region: inputs.spec.region,
        instanceGroupManager: groupName(inputs.spec.name, role),
        pageToken,
        maxResults: 500,
      },
      { autoPaginate: false },
    );
    all.push(...((items ?? []) as Managed[]));
    pageToken = (page as { nextPageToken?: string } | undefined)?.nextPageToken || undefined;
  } while (pageToken);
  return all;
}

/**
 * Replaces the instances not on `template`, a batch at a time; each batch must be running, on the
 * template, and the group stable before the next begins (or the rollout stops, naming the group).
 */
export async function rollOut(ctx: GceContext, role: Role, template: string): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const name = groupName(spec.name, role);
  const onTemplate = (m: Managed) => resourcePath(m.version?.instanceTemplate) === template;
  // A group a plan would create has no instances yet (and so nothing to replace).
  const members = isPlanned(clusterId) ? [] : ((await ifFound(() => managedInstances(ctx, role))) ?? []);
  const stale = members.filter((m) => !onTemplate(m));
  const batch = rolloutBatch(spec, role, groupSize(spec, role));
  // A plan says how many go and how; the batches themselves are known only as they are made.
  if (rec.dryRun) {
    if (stale.length > 0)
      await rec.make(
        {
          action: "replace",
          kind: "instances",
          name,
          detail: `${stale.length} on the new template, ${batch} at a time`,
        },
        async () => {},
        undefined,
      );
    return;
  }
  for (let left = stale; left.length > 0;) {
    const now = left.slice(0, batch).map((m) => m.instance!);
    await rec.make(
      {
        action: "replace",
        kind: "instances",
        name,
        detail: now.map((url) => url.split("/").pop()).join(", "),
      },
      async () => {
        await completed(
          ctx,
          await clients.groups.recreateInstances({
            project: clients.project,
            region: spec.region,
            instanceGroupManager: name,
            regionInstanceGroupManagersRecreateRequestResource: { instances: now },
          }),
          `recreate instances of ${name}`,
        );
        const gate = role === "masters" ? ` and pass the launch gate (${LAUNCH_GATE_ATTRIBUTE})` : "";
        await waitFor(
          ctx,
          `${name} to run its replaced instances${gate}`,
          spec.rollout.timeoutSeconds * 1000,
          async () => {
            const group = await readGroup(ctx, role);
            if (!group?.status?.isStable) return false;
            const members = await managedInstances(ctx, role);
            const replaced = now.map((url) => members.find((member) => member.instance === url));
            const running = replaced.every(
              (m) => !m || (onTemplate(m) && m.instanceStatus === "RUNNING" && m.currentAction === "NONE"),
            );
            // A master is in service once its etcd member votes and its API server is ready (src/node/launch-ready).
            if (!running || role !== "masters") return running;
            for (const url of now) if (!(await passedGate(ctx, url))) return false;
            return true;
          },
        );
      },
      undefined,
    );
    left = (await managedInstances(ctx, role)).filter((m) => !onTemplate(m));
  }
}

/** Whether the instance at `url` set the launch gate's guest attribute (a new VM has none). */
async function passedGate(ctx: GceContext, url: string): Promise<boolean> {
  const [, zone, instance] = /\/zones\/([^/]+)\/instances\/([^/]+)$/.exec(url) ?? [];
  if (!zone || !instance) return false;
  const { clients } = ctx;
  const answer = await ifFound(() =>
    clients.instances.getGuestAttributes({
      project: clients.project,
      zone,
      instance,
      variableKey: LAUNCH_GATE_ATTRIBUTE,
    }),
  );
  return answer?.[0]?.variableValue === "ready";
}

/** The role's older templates (ours, and no group's any more): deleted once the rollout is over. */
export async function retireTemplates(ctx: GceContext, role: Role, current: string): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  if (isPlanned(clusterId)) return;
  const [templates] = await clients.templates.list(
    { project: clients.project, filter: `name eq "${prefix(inputs.spec.name)}-${role}-.*"`, maxResults: 500 },
    { autoPaginate: false },
  );
  for (const template of templates ?? []) {
    if (
      ownerIn(template.description) !== clusterId ||
      templatePath(clients.project, template.name!) === current
    )
      continue;
    await rec.make(
      { action: "delete", kind: "instance-template", name: template.name! },
      async () =>
        completed(
          ctx,
          await clients.templates.delete({ project: clients.project, instanceTemplate: template.name! }),
          `delete instance template ${template.name}`,
        ),
      undefined,
    );
  }
}
