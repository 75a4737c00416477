/**
 * What an Azure cluster should be, as pure data from the spec: names, tags, the network security rules
 * between the roles, who may do what. The reconcilers compare these with what Azure holds.
 *
 * Everything kubebake creates carries the tags `KubernetesCluster=<cluster>` and `kubebake:owner=<id>`;
 * only what carries the cluster's id is changed or deleted.
 */
import { roleFileCloudConfig } from "../role-file";
import { createHash } from "node:crypto";
import type { AzureClusterSpec } from "../../cluster/schema";
import type { VirtualMachineScaleSetVMProfile } from "@azure/arm-compute";
import { azureScaleSetName, azureZoneName } from "../../discover/azure";
import type { Role } from "../../discover/names";
import { ROLE_SECRET_NAMES } from "../pki-files";

export const CLUSTER_TAG = "KubernetesCluster";
export const ROLE_TAG = "Role";
export const OWNER_TAG = "kubebake:owner";
export const NAME_TAG = "kubebake:name";

export const prefix = (cluster: string) => `kubebake-${cluster}`;
/** The cluster's resource group: the spec's, or kubebake's own. */
export const resourceGroupName = (spec: Pick<AzureClusterSpec, "name" | "resourceGroup">) =>
  spec.resourceGroup ?? prefix(spec.name);
/** Whether kubebake made the resource group (and so deletes it on destroy). */
export const ownsResourceGroup = (spec: Pick<AzureClusterSpec, "resourceGroup">) =>
  spec.resourceGroup === undefined;
export const virtualNetworkName = prefix;
export const SUBNET_NAME = "nodes";
export const securityGroupName = (cluster: string) => `${prefix(cluster)}-nodes`;
/** The private subnet's way out: a NAT gateway and its public IP address, both of this name. */
export const natGatewayName = (cluster: string) => `${prefix(cluster)}-egress`;
export const egressAddressName = natGatewayName;
/** An application security group per role: the rules name a role's NICs by it. */
export const roleGroupName = (cluster: string, role: Role) => `${prefix(cluster)}-${role}`;
/** A role's scale set: discovery finds it by this name (src/discover/azure.ts). */
export const scaleSetName = azureScaleSetName;

/** Who acts for the cluster: the two roles' nodes, and discovery (its function). */
export type Identity = Role | "dns";
export const IDENTITIES: readonly Identity[] = ["masters", "minions", "dns"];
export const identityName = (cluster: string, identity: Identity) => `${prefix(cluster)}-${identity}`;

const hash = (text: string, length: number) =>
  createHash("sha256").update(text).digest("hex").slice(0, length);

/**
 * The cluster's Key Vault: names are global to Azure and 3 to 24 characters, so the cluster's name is
 * shortened and a hash of the subscription, group and cluster keeps two clusters apart.
 */
export function vaultName(
  subscription: string,
  spec: Pick<AzureClusterSpec, "name" | "resourceGroup">,
): string {
  const tail = `-${hash(`${subscription}/${resourceGroupName(spec)}/${spec.name}`, 8)}`;
  return `kb-${spec.name.slice(0, 24 - 3 - tail.length).replace(/-+$/, "")}${tail}`;
}

/** Tags of everything kubebake creates for a cluster: the operator's, then the cluster, its id and the part. */
export function tagsFor(
  spec: AzureClusterSpec,
  logicalName: string,
  clusterId: string,
): Record<string, string> {
  return { ...spec.tags, [CLUSTER_TAG]: spec.name, [OWNER_TAG]: clusterId, [NAME_TAG]: logicalName };
}

export interface SecurityRule {
  name: string;
  what: string;
  priority: number;
  protocol: "Tcp" | "Udp" | "*";
  ports: string[];
  access: "Allow" | "Deny";
  to: Role[] | "VirtualNetwork";
  from: { roles: Role[] } | { prefixes: string[] };
}

/**
 * Inbound rules of the nodes' subnet. Azure's default rules allow everything within the virtual network,
 * so after the rules for exactly the ports the roles need comes a deny of all other traffic from it; the
 * operators' ranges come in on 6443 and 22 only when listed. Outbound stays Azure's default.
 */
export function securityRules(spec: AzureClusterSpec): SecurityRule[] {
  const rules: SecurityRule[] = [
    rule("api-from-nodes", "API server from the nodes", 100, "Tcp", ["6443"], ["masters"], {
      roles: ["masters", "minions"],
    }),
    rule("etcd", "etcd clients and peers between masters", 110, "Tcp", ["2379-2380"], ["masters"], {
      roles: ["masters"],
    }),
    rule(
      "kubelet",
      "kubelet API from the API servers and from minions (metrics)",
      120,
      "Tcp",
      ["10250"],
      ["minions"],
      {
        roles: ["masters", "minions"],
      },
    ),
    rule("flannel", "flannel VXLAN overlay", 130, "Udp", ["8472"], ["minions"], { roles: ["minions"] }),
  ];
  const { apiAccess, sshAccess } = spec.network;
  if (apiAccess.length > 0)
    rules.push(
      rule("api-operators", "API server from the operators' ranges", 200, "Tcp", ["6443"], ["masters"], {
        prefixes: [...apiAccess].sort(),
      }),
    );
  if (sshAccess.length > 0)
    rules.push(
      rule("ssh", "SSH from the operators' ranges", 210, "Tcp", ["22"], ["masters", "minions"], {
        prefixes: [...sshAccess].sort(),
      }),
    );
  rules.push({
    name: "deny-other-virtual-network",
    what: "nothing else from within the virtual network (Azure's default rule allows it all)",
    priority: 4096,
    protocol: "*",
    ports: ["*"],
    access: "Deny",
    to: "VirtualNetwork",
    from: { prefixes: ["VirtualNetwork"] },
  });
  return rules;
}

function rule(
  name: string,
  what: string,
  priority: number,
  protocol: SecurityRule["protocol"],
  ports: string[],
  to: Role[],
  from: SecurityRule["from"],
): SecurityRule {
  return { name, what, priority, protocol, ports, access: "Allow", to, from };
}

/**
 * A rule as the Network API takes it, with the roles' application security groups by id (`groupIds`).
 * Single values go in the singular fields, lists in the plural ones, as Azure answers them back.
 */
export function securityRuleBody(rule: SecurityRule, groupIds: Record<Role, string>) {
  const asgs = (roles: Role[]) => roles.map((role) => ({ id: groupIds[role] }));
  const one = <T>(values: T[], single: string, plural: string) =>
    values.length === 1 ? { [single]: values[0] } : { [plural]: values };
  return {
    name: rule.name,
    description: rule.what,
    priority: rule.priority,
    direction: "Inbound",
    access: rule.access,
    protocol: rule.protocol,
    sourcePortRange: "*",
    ...one(rule.ports, "destinationPortRange", "destinationPortRanges"),
    ...("roles" in rule.from
      ? { sourceApplicationSecurityGroups: asgs(rule.from.roles) }
      : one(rule.from.prefixes, "sourceAddressPrefix", "sourceAddressPrefixes")),
    ...(rule.to === "VirtualNetwork"
      ? { destinationAddressPrefix: "VirtualNetwork" }
      : { destinationApplicationSecurityGroups: asgs(rule.to) }),
  };
}

/** Built-in roles kubebake grants, by their ids (the same in every tenant). */
export const BUILT_IN_ROLES = {
  reader: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
  keyVaultSecretsUser: "4633458b-17de-408a-b874-0445c86b69e6",
  keyVaultSecretsOfficer: "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
  privateDnsZoneContributor: "b12aa53e-6015-4669-85d0-8515ebb3ae7f",
  virtualMachineContributor: "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
  /** The Functions host's identity-based storage (leases, timers) and its package read. */
  storageBlobDataOwner: "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
} as const;

/**
 * A role assignment's name: a GUID derived from its scope, role and principal, so an apply finds its own
 * assignment again (Azure refuses a second one of the same three under another name).
 */
export function assignmentName(scope: string, roleId: string, principalId: string): string {
  const hex = hash(`${scope.toLowerCase()}|${roleId}|${principalId}`, 32);
  // The version and variant bits of a name-based UUID (v5's layout, SHA-256 instead of SHA-1).
  const v = (parseInt(hex[16]!, 16) & 0x3) | 0x8;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${v.toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** The prefix of the PKI's secrets in the cluster's vault: `pki-<file with . as ->` (providers/azure.sh). */
export const SECRET_PREFIX = "pki";
export const secretName = (file: string) => `${SECRET_PREFIX}-${file.replaceAll(".", "-")}`;
/** The secret a master sets (a version tagged with its vmId) once it votes and serves; rollouts wait for it. */
export const LAUNCH_GATE_SECRET = "launch-ready";

/**
 * Who may do what with each secret of the vault (scope: the secret): masters read what node-config fetches
 * for them and write the join token and the launch gate; minions read the CA certificate and the join
 * token; nobody reads the admin credential (the operator's own rights do).
 */
export function secretGrants(): {
  secret: string;
  role: "keyVaultSecretsUser" | "keyVaultSecretsOfficer";
  who: Role;
}[] {
  const grants: ReturnType<typeof secretGrants> = [];
  for (const who of ["masters", "minions"] as const)
    for (const file of ROLE_SECRET_NAMES[who])
      grants.push({ secret: secretName(file), role: "keyVaultSecretsUser", who });
  grants.push({ secret: secretName("bootstrap-token"), role: "keyVaultSecretsOfficer", who: "masters" });
  grants.push({ secret: LAUNCH_GATE_SECRET, role: "keyVaultSecretsOfficer", who: "masters" });
  return grants;
}

/** The cluster's private zone in Azure's form: `<cluster>.<domain>`, no trailing dot. */
export const privateZoneName = azureZoneName;
export const zoneLinkName = (cluster: string) => `${prefix(cluster)}-nodes`;

/** The admin user of every node (Azure requires one, with a key: see AzureClusterSpec.sshPublicKey). */
export const ADMIN_USER = "kubebake";

/** What a node of a role needs to know besides its image: all of it public, secrets come from the vault. */
export interface RoleFacts {
  subscription: string;
  resourceGroup: string;
  vault: string;
  /** The client id of the role's managed identity (IMDS tokens name it). */
  clientId: string;
}

/**
 * cloud-init user data (the scale set's custom data): the role file and nothing secret (secrets come from
 * Key Vault with the VM's managed identity; src/node/providers/azure.sh reads these names).
 */
export function userData(spec: AzureClusterSpec, role: Role, facts: RoleFacts): string {
  const roleFile = [
    `CLUSTER_NAME=${spec.name}`,
    "CLOUD_PROVIDER=azure",
    `SECRET_SOURCE=keyvault:${facts.vault}/${SECRET_PREFIX}`,
    `AZURE_CLIENT_ID=${facts.clientId}`,
    `AZURE_SUBSCRIPTION_ID=${facts.subscription}`,
    `AZURE_RESOURCE_GROUP=${facts.resourceGroup}`,
    ...(role === "masters"
      ? [
          // etcd-member seeds a new etcd cluster only once the whole group is in the masters record.
          `MASTERS_COUNT=${spec.groups.masters.count}`,
          `GROUP_NAME=${scaleSetName(spec.name, "masters")}`,
          // The launch gate: the secret a master sets once it votes and serves (launch-ready).
          `LAUNCH_HOOK=${LAUNCH_GATE_SECRET}`,
        ]
      : []),
  ];
  return roleFileCloudConfig(role, roleFile);
}

/** The tag of a scale set that says which model generation it is on (the hash of its model). */
export const MODEL_TAG = "kubebake:model";

export interface ScaleSetLinks {
  subnetId: string;
  securityGroupId: string;
  roleGroupId: string;
  identityId: string;
  image: string;
}

/** A role's members as groups.ts counts them: masters a fixed count, minions the desired within min..max. */
export const capacityOf = (spec: AzureClusterSpec, role: Role) =>
  role === "masters" ? spec.groups.masters.count : spec.groups.minions.desired;

/**
 * The virtual machine profile of a role's scale set: what every member is made from. Trusted Launch
 * (secure boot, vTPM), the managed identity of its role, the NIC in the nodes' security group and its
 * role's application security group, a public IP only when the spec asks, the admin user with a key only.
 */
export function machineProfile(
  spec: AzureClusterSpec,
  role: Role,
  links: ScaleSetLinks,
  customData: string,
  sshKey: string,
): VirtualMachineScaleSetVMProfile {
  return {
    osProfile: {
      // The node's name is the computer name: `<cluster>-<role>-` and six characters Azure adds.
      computerNamePrefix: `${spec.name}-${role}-`,
      adminUsername: ADMIN_USER,
      customData: Buffer.from(customData).toString("base64"),
      linuxConfiguration: {
        disablePasswordAuthentication: true,
        ssh: { publicKeys: [{ path: `/home/${ADMIN_USER}/.ssh/authorized_keys`, keyData: sshKey }] },
        provisionVMAgent: false,
      },
    },
    storageProfile: {
      imageReference: { id: links.image },
      osDisk: {
        createOption: "FromImage",
        caching: "ReadWrite",
        deleteOption: "Delete",
        managedDisk: { storageAccountType: "Premium_LRS" },
      },
    },
    securityProfile: {
      securityType: "TrustedLaunch",
      uefiSettings: { secureBootEnabled: true, vTpmEnabled: true },
    },
    networkProfile: {
      networkApiVersion: "2020-11-01",
      // The SDK's flattened form of the description's `properties`.
      networkInterfaceConfigurations: [
        {
          name: "nic",
          primary: true,
          enableAcceleratedNetworking: false,
          networkSecurityGroup: { id: links.securityGroupId },
          deleteOption: "Delete",
          ipConfigurations: [
            {
              name: "ip",
              primary: true,
              subnet: { id: links.subnetId },
              applicationSecurityGroups: [{ id: links.roleGroupId }],
              ...(spec.network.internet === true
                ? { publicIPAddressConfiguration: { name: "public", deleteOption: "Delete" } }
                : {}),
            },
          ],
        },
      ],
    },
  };
}
