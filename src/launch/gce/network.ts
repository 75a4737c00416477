/**
 * The cluster's VPC network and its one regional subnetwork (Private Google Access on: private nodes reach
 * Secret Manager and Compute without the internet), or the operator's existing ones, checked.
 */
import { invalidInput } from "../../errors";
import { isPlanned } from "../changes";
import { ifFound } from "./clients";
import { completed, resourcePath, type GceBaseContext, type GceContext } from "./context";
import { describedAs, networkName, ownerIn, subnetworkName } from "./desired";
import { foreign } from "./owner";

export interface NetworkLinks {
  network: string;
  subnetwork: string;
}

const paths = (project: string, region: string, network: string, subnetwork: string): NetworkLinks => ({
  network: `projects/${project}/global/networks/${network}`,
  subnetwork: `projects/${project}/regions/${region}/subnetworks/${subnetwork}`,
});

/** An existing network and subnetwork must exist, in the cluster's region, the one in the other. */
export async function checkNetwork(ctx: GceBaseContext): Promise<void> {
  const { spec } = ctx.inputs;
  const { clients } = ctx;
  if (spec.network.name === undefined) return;
  const network = await ifFound(() =>
    clients.networks.get({ project: clients.project, network: spec.network.name! }),
  );
  if (!network)
    throw invalidInput(`network.name: network ${spec.network.name} does not exist in ${clients.project}`);
  const subnetwork = await ifFound(() =>
    clients.subnetworks.get({
      project: clients.project,
      region: spec.region,
      subnetwork: spec.network.subnetwork!,
    }),
  );
  if (!subnetwork)
    throw invalidInput(
      `network.subnetwork: subnetwork ${spec.network.subnetwork} does not exist in ${spec.region}`,
    );
  if (
    resourcePath(subnetwork[0].network) !== `projects/${clients.project}/global/networks/${spec.network.name}`
  )
    throw invalidInput(
      `network.subnetwork: ${spec.network.subnetwork} belongs to ${resourcePath(subnetwork[0].network)}, not network ${spec.network.name}`,
    );
}

export async function ensureNetwork(ctx: GceContext): Promise<NetworkLinks> {
  const { spec } = ctx.inputs;
  const { clients, rec, clusterId } = ctx;
  const { project } = clients;
  if (spec.network.name !== undefined)
    return paths(project, spec.region, spec.network.name, spec.network.subnetwork!);
  const name = networkName(spec.name);
  const links = paths(project, spec.region, name, subnetworkName(spec.name));
  const found = isPlanned(clusterId)
    ? undefined
    : await ifFound(() => clients.networks.get({ project, network: name }));
  if (found && ownerIn(found[0].description) !== clusterId)
    throw foreign("network", name, ownerIn(found[0].description));
  if (!found)
    await rec.make(
      { action: "create", kind: "network", name },
      async () =>
        completed(
          ctx,
          await clients.networks.insert({
            project,
            networkResource: {
              name,
              description: describedAs(spec, clusterId, "the cluster's network"),
              autoCreateSubnetworks: false,
              routingConfig: { routingMode: "REGIONAL" },
            },
          }),
          `create network ${name}`,
        ),
      undefined,
    );
  await ensureSubnetwork(ctx, links);
  return links;
}

async function ensureSubnetwork(ctx: GceContext, links: NetworkLinks): Promise<void> {
  const { spec } = ctx.inputs;
  const { clients, rec, clusterId } = ctx;
  const { project } = clients;
  const name = subnetworkName(spec.name);
  const found = isPlanned(clusterId)
    ? undefined
    : (await ifFound(() => clients.subnetworks.get({ project, region: spec.region, subnetwork: name })))?.[0];
  if (found && ownerIn(found.description) !== clusterId)
    throw foreign("subnetwork", name, ownerIn(found.description));
  if (!found) {
    await rec.make(
      { action: "create", kind: "subnetwork", name, detail: `${spec.network.cidr} in ${spec.region}` },
      async () =>
        completed(
          ctx,
          await clients.subnetworks.insert({
            project,
            region: spec.region,
            subnetworkResource: {
              name,
              description: describedAs(spec, clusterId, "the nodes' subnetwork"),
              network: links.network,
              ipCidrRange: spec.network.cidr,
              privateIpGoogleAccess: true,
            },
          }),
          `create subnetwork ${name}`,
        ),
      undefined,
    );
    return;
  }
  // A range cannot change under running nodes: the spec is wrong, not the subnetwork.
  if (found.ipCidrRange !== spec.network.cidr)
    throw invalidInput(
      `network.cidr: the cluster's subnetwork ${name} has ${found.ipCidrRange}; a range cannot change under running nodes`,
    );
  if (!found.privateIpGoogleAccess)
    await rec.make(
      { action: "update", kind: "subnetwork", name, detail: "Private Google Access on" },
      async () =>
        completed(
          ctx,
          await clients.subnetworks.setPrivateIpGoogleAccess({
            project,
            region: spec.region,
            subnetwork: name,
            subnetworksSetPrivateIpGoogleAccessRequestResource: { privateIpGoogleAccess: true },
          }),
          `Private Google Access on ${name}`,
        ),
      undefined,
    );
}
