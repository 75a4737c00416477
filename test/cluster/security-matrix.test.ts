/**
 * Security groups as a matrix: for each source (the two roles, the internet, an operator network, a
 * stray VPC address) and each destination role, the exact ports open, asserted whole. The matrix is
 * evaluated both from securityGroupRules and from the permissions the AWS step actually writes.
 */
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DescribeSecurityGroupsCommand,
  RevokeSecurityGroupIngressCommand,
  type IpPermission,
} from "@aws-sdk/client-ec2";
import { awsClusterSpecSchema, type AwsClusterSpec } from "../../src/cluster/schema";
import { ROLES, type Role } from "../../src/discover/names";
import { ChangeRecorder } from "../../src/launch/changes";
import type { AwsClients } from "../../src/launch/aws/clients";
import type { Context } from "../../src/launch/aws/context";
import { OWNER_TAG, securityGroupRules } from "../../src/launch/aws/desired";
import { ensureSecurityGroups } from "../../src/launch/aws/security";
import { silentProgress } from "../../src/util/progress";
import { clusterYaml, inputsFor } from "../aws/fixture";

const API_OPERATOR = "203.0.113.0/24";
const SSH_OPERATOR = "198.51.100.0/24";

/** A source is a security group (a role) or one concrete IPv4 address. */
const SOURCES = {
  masters: { group: "masters" },
  minions: { group: "minions" },
  world: { address: "192.0.2.77" }, // any internet address outside the operator networks
  "apiAccess operator": { address: "203.0.113.9" },
  "sshAccess operator": { address: "198.51.100.20" },
  "other VPC address": { address: "10.0.200.5" }, // in the VPC, but in neither group
} as const satisfies Record<string, { group: Role } | { address: string }>;
type Source = keyof typeof SOURCES;

const ipv4 = (address: string) => address.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
function inCidr(address: string, cidr: string): boolean {
  const [base, bits] = cidr.split("/");
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipv4(address) / size) === Math.floor(ipv4(base!) / size);
}

/** Ports as a set per protocol, printed as merged ranges: "tcp 22, tcp 2379-2380, udp 8472". */
function formatPorts(open: { protocol: string; from: number; to: number }[]): string {
  const ports = new Map<string, Set<number>>();
  for (const { protocol, from, to } of open) {
    const set = ports.get(protocol) ?? new Set<number>();
    for (let p = from; p <= to; p++) set.add(p);
    ports.set(protocol, set);
  }
  const parts: string[] = [];
  for (const protocol of [...ports.keys()].sort()) {
    const sorted = [...ports.get(protocol)!].sort((a, b) => a - b);
    let start = sorted[0]!;
    sorted.forEach((p, i) => {
      if (sorted[i + 1] === p + 1) return;
      parts.push(`${protocol} ${start === p ? p : `${start}-${p}`}`);
      start = sorted[i + 1]!;
    });
  }
  return parts.join(", ") || "nothing";
}

/** An allowance in either shape: a desired rule or a written IpPermission, reduced to what it admits. */
interface Allowance {
  protocol: string;
  from: number;
  to: number;
  admits: (source: Source) => boolean;
}

const admitsFrom =
  (group: Role | undefined, cidr: string | undefined) =>
  (source: Source): boolean => {
    const s = SOURCES[source];
    return "group" in s ? s.group === group : cidr !== undefined && inCidr(s.address, cidr);
  };

function fromRules(spec: AwsClusterSpec): Record<Role, Allowance[]> {
  const rules = securityGroupRules(spec);
  const shape = (role: Role) =>
    rules[role].map((r) => ({
      protocol: r.protocol,
      from: r.from,
      to: r.to,
      admits: admitsFrom(
        "group" in r.source ? r.source.group : undefined,
        "cidr" in r.source ? r.source.cidr : undefined,
      ),
    }));
  return { masters: shape("masters"), minions: shape("minions") };
}

const GROUP_IDS: Record<Role, string> = { masters: "sg-0000000000masters", minions: "sg-0000000000minions" };
const roleOfGroup = (id: string) => ROLES.find((role) => GROUP_IDS[role] === id);

function fromPermissions(permissions: Record<Role, IpPermission[]>): Record<Role, Allowance[]> {
  const shape = (role: Role) =>
    permissions[role].flatMap((p) => [
      ...(p.IpRanges ?? []).map((range) => ({
        protocol: p.IpProtocol!,
        from: p.FromPort!,
        to: p.ToPort!,
        admits: admitsFrom(undefined, range.CidrIp),
      })),
      ...(p.UserIdGroupPairs ?? []).map((pair) => ({
        protocol: p.IpProtocol!,
        from: p.FromPort!,
        to: p.ToPort!,
        admits: admitsFrom(roleOfGroup(pair.GroupId!), undefined),
      })),
    ]);
  return { masters: shape("masters"), minions: shape("minions") };
}

/** "source -> destination: ports" for every pair. */
function matrix(allowances: Record<Role, Allowance[]>): string[] {
  return (Object.keys(SOURCES) as Source[]).flatMap((source) =>
    ROLES.map(
      (role) => `${source} -> ${role}: ${formatPorts(allowances[role].filter((a) => a.admits(source)))}`,
    ),
  );
}

const specWith = (network: Record<string, unknown>) =>
  awsClusterSpecSchema.parse(clusterYaml({ network: { zones: ["eu-west-1a", "eu-west-1b"], ...network } }));

/**
 * Runs the AWS step against a stand-in EC2 client; `existing` are the groups it finds (none: it creates
 * them). Returns what it authorized and revoked, per role.
 */
async function runSecurityStep(spec: AwsClusterSpec, existing: Record<Role, IpPermission[]> | undefined) {
  const clusterId = "kb-0123456789abcdef";
  const authorized: Record<Role, IpPermission[]> = { masters: [], minions: [] };
  const revoked: Record<Role, IpPermission[]> = { masters: [], minions: [] };
  const groupName = (role: Role) => `kubebake-${spec.name}-${role}`;
  const ec2 = {
    send: async (command: unknown) => {
      if (command instanceof DescribeSecurityGroupsCommand) {
        return {
          SecurityGroups: existing
            ? ROLES.map((role) => ({
                GroupName: groupName(role),
                GroupId: GROUP_IDS[role],
                Tags: [{ Key: OWNER_TAG, Value: clusterId }],
                IpPermissions: existing[role],
              }))
            : [],
        };
      }
      if (command instanceof CreateSecurityGroupCommand) {
        const role = ROLES.find((r) => command.input.GroupName === groupName(r))!;
        return { GroupId: GROUP_IDS[role] };
      }
      if (command instanceof AuthorizeSecurityGroupIngressCommand) {
        authorized[roleOfGroup(command.input.GroupId!)!].push(...command.input.IpPermissions!);
        return {};
      }
      if (command instanceof RevokeSecurityGroupIngressCommand) {
        revoked[roleOfGroup(command.input.GroupId!)!].push(...command.input.IpPermissions!);
        return {};
      }
      throw new Error(`unexpected EC2 call ${(command as object).constructor.name}`);
    },
  };
  const ctx = {
    clients: { ec2 } as unknown as AwsClients,
    inputs: inputsFor(spec),
    rec: new ChangeRecorder(false, silentProgress),
    pollMs: 1,
    sleep: async () => {},
    clusterId,
  } satisfies Context;
  expect(await ensureSecurityGroups(ctx, "vpc-0123456789abcdef0")).toEqual(GROUP_IDS);
  return { authorized, revoked };
}

describe("security groups as an exact matrix", () => {
  const spec = specWith({ apiAccess: [API_OPERATOR], sshAccess: [SSH_OPERATOR] });
  const expected = [
    "masters -> masters: tcp 2379-2380, tcp 6443",
    "masters -> minions: tcp 10250",
    "minions -> masters: tcp 6443",
    "minions -> minions: tcp 10250, udp 8472",
    "world -> masters: nothing",
    "world -> minions: nothing",
    "apiAccess operator -> masters: tcp 6443",
    "apiAccess operator -> minions: nothing",
    "sshAccess operator -> masters: tcp 22",
    "sshAccess operator -> minions: tcp 22",
    "other VPC address -> masters: nothing",
    "other VPC address -> minions: nothing",
  ];

  test("the desired rules open exactly the table (etcd only between masters; nothing to the world)", () => {
    expect(matrix(fromRules(spec))).toEqual(expected);
  });

  test("the permissions the AWS step writes open exactly the same table", async () => {
    const { authorized, revoked } = await runSecurityStep(spec, undefined);
    expect(matrix(fromPermissions(authorized))).toEqual(expected);
    expect(revoked).toEqual({ masters: [], minions: [] });
  });

  test("each permission written says in AWS (and in the plan) what it opens and to whom", async () => {
    const { authorized } = await runSecurityStep(spec, undefined);
    const labels = (role: Role) =>
      authorized[role].flatMap((p) => {
        const ports = `${p.IpProtocol} ${p.FromPort}-${p.ToPort}`;
        return [
          ...(p.IpRanges ?? []).map((r) => `${ports} from ${r.CidrIp}: ${r.Description}`),
          ...(p.UserIdGroupPairs ?? []).map(
            (pair) => `${ports} from ${roleOfGroup(pair.GroupId!)}: ${pair.Description}`,
          ),
        ];
      });
    expect(labels("masters")).toEqual([
      "tcp 6443-6443 from minions: API server from minions",
      "tcp 6443-6443 from masters: API server from masters",
      "tcp 2379-2380 from masters: etcd clients and peers between masters",
      `tcp 6443-6443 from ${API_OPERATOR}: API server from ${API_OPERATOR}`,
      `tcp 22-22 from ${SSH_OPERATOR}: SSH from ${SSH_OPERATOR}`,
    ]);
    expect(labels("minions")).toEqual([
      "udp 8472-8472 from minions: flannel VXLAN overlay",
      "tcp 10250-10250 from masters: kubelet API from the API servers",
      "tcp 10250-10250 from minions: kubelet API from minions (metrics)",
      `tcp 22-22 from ${SSH_OPERATOR}: SSH from ${SSH_OPERATOR}`,
    ]);
  });

  test("without operator networks, only the cluster's own groups reach anything", () => {
    const closed = matrix(fromRules(specWith({})));
    expect(closed).toEqual(
      expected.map((line) =>
        /^(masters|minions) ->/.test(line) ? line : line.replace(/: .*$/, ": nothing"),
      ),
    );
  });

  test("the world sees SSH or the API only with the explicit allow flag; a /0 without it is refused", () => {
    expect(() => specWith({ sshAccess: ["0.0.0.0/0"] })).toThrow(/allowSshFromAnywhere/);
    expect(() => specWith({ apiAccess: ["0.0.0.0/0"] })).toThrow(/allowApiFromAnywhere/);
    const world = (s: AwsClusterSpec) => matrix(fromRules(s)).filter((line) => line.startsWith("world "));
    expect(world(specWith({ sshAccess: ["0.0.0.0/0"], allowSshFromAnywhere: true }))).toEqual([
      "world -> masters: tcp 22",
      "world -> minions: tcp 22",
    ]);
    expect(world(specWith({ apiAccess: ["0.0.0.0/0"], allowApiFromAnywhere: true }))).toEqual([
      "world -> masters: tcp 6443",
      "world -> minions: nothing",
    ]);
    // The flags alone open nothing.
    expect(world(specWith({ allowSshFromAnywhere: true, allowApiFromAnywhere: true }))).toEqual([
      "world -> masters: nothing",
      "world -> minions: nothing",
    ]);
  });

  test("IPv6: the desired rules are IPv4 only, and the AWS step writes no IPv6 range or prefix list", async () => {
    const open = specWith({
      apiAccess: ["0.0.0.0/0"],
      sshAccess: ["0.0.0.0/0"],
      allowSshFromAnywhere: true,
      allowApiFromAnywhere: true,
    });
    for (const rule of Object.values(securityGroupRules(open)).flat()) {
      if ("cidr" in rule.source) expect(rule.source.cidr).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    }
    expect(() => specWith({ sshAccess: ["::/0"], allowSshFromAnywhere: true })).toThrow(/IPv4/);
    const { authorized } = await runSecurityStep(open, undefined);
    const written = Object.values(authorized).flat();
    expect(written.length).toBeGreaterThan(0);
    for (const permission of written) {
      expect(permission.Ipv6Ranges).toBeUndefined();
      expect(permission.PrefixListIds).toBeUndefined();
      expect(permission.IpProtocol).toMatch(/^(tcp|udp)$/);
    }
  });

  test("an IPv6 or prefix-list rule found on a group is revoked; the desired ones are kept", async () => {
    const { authorized: desired } = await runSecurityStep(spec, undefined);
    const stray: IpPermission[] = [
      { IpProtocol: "tcp", FromPort: 22, ToPort: 22, Ipv6Ranges: [{ CidrIpv6: "::/0" }] },
      {
        IpProtocol: "tcp",
        FromPort: 6443,
        ToPort: 6443,
        PrefixListIds: [{ PrefixListId: "pl-0123456789abcdef0" }],
      },
      { IpProtocol: "-1", IpRanges: [{ CidrIp: "0.0.0.0/0" }] },
    ];
    const { authorized, revoked } = await runSecurityStep(spec, {
      masters: [...desired.masters, ...stray],
      minions: [...desired.minions, stray[0]!],
    });
    expect(authorized).toEqual({ masters: [], minions: [] });
    expect(revoked).toEqual({
      masters: [
        { IpProtocol: "tcp", FromPort: 22, ToPort: 22, Ipv6Ranges: [{ CidrIpv6: "::/0" }] },
        {
          IpProtocol: "tcp",
          FromPort: 6443,
          ToPort: 6443,
          PrefixListIds: [{ PrefixListId: "pl-0123456789abcdef0" }],
        },
        { IpProtocol: "-1", FromPort: undefined, ToPort: undefined, IpRanges: [{ CidrIp: "0.0.0.0/0" }] },
      ],
      minions: [{ IpProtocol: "tcp", FromPort: 22, ToPort: 22, Ipv6Ranges: [{ CidrIpv6: "::/0" }] }],
    });
  });
});
