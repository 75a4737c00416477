import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { parse, stringify } from "yaml";
import { loadClusterSpec } from "../src/cluster/load";
import { KubebakeError } from "../src/errors";
import { loadImageSpec } from "../src/spec/load";
import { clusterYaml } from "./aws/fixture";
import { fixtureSpec, tempDir } from "./helpers";

/** Schema problems in plain words: none of zod's own phrasing ("Invalid input", "received") reaches users. */
const dir = tempDir("spec-messages");

function messageOf(load: (path: string) => unknown, name: string, spec: unknown): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, typeof spec === "string" ? spec : stringify(spec));
  try {
    load(file);
  } catch (error) {
    expect(error).toBeInstanceOf(KubebakeError);
    // Without the file and line prefix: the messages are what this test is about.
    return (error as Error).message.replace(/^.*?\.yaml:\d+: /gm, "");
  }
  throw new Error(`${name}: accepted`);
}

const minions = { min: 1, max: 3, desired: 2, instanceType: "t3.large" };
const masters = { count: 1, instanceType: "t3.medium" };

const clusterCases: [string, Record<string, unknown> | string, string][] = [
  ["name a number", clusterYaml({ name: 5 }), "name: expected a string, got a number"],
  [
    "missing max",
    clusterYaml({ groups: { masters, minions: { min: 1, desired: 1, instanceType: "t3.large" } } }),
    "groups.minions: missing field max",
  ],
  ["unknown field", clusterYaml({ foo: 1 }), "unknown field foo"],
  ["unknown nested field", clusterYaml({ discovery: { tll: 30 } }), "discovery: unknown field tll"],
  ["other cloud", clusterYaml({ cloud: "gcp" }), 'cloud: expected one of "aws", "gce", "azure", got "gcp"'],
  ["other kind", clusterYaml({ kind: "X" }), 'kind: expected "Cluster", got "X"'],
  [
    "enum",
    clusterYaml({ discovery: { emptyGroup: "x" } }),
    'discovery.emptyGroup: expected one of "delete", "keep", got "x"',
  ],
  [
    "negative ttl",
    clusterYaml({ discovery: { ttl: -1 } }),
    "discovery.ttl: expected a number of at least 0, got -1",
  ],
  [
    "fraction",
    clusterYaml({ discovery: { ttl: 1.5 } }),
    "discovery.ttl: expected a whole number, got the fraction 1.5",
  ],
  [
    "too big",
    clusterYaml({ rollout: { batchPercent: 101 } }),
    "rollout.batchPercent: expected a number of at most 100, got 101",
  ],
  ["tag value", clusterYaml({ tags: { a: 5 } }), "tags.a: expected a string, got a number"],
  ["network a string", clusterYaml({ network: "x" }), "network: expected a mapping, got a string"],
  [
    "list expected",
    clusterYaml({ network: { apiAccess: "1.2.3.4/32" } }),
    "network.apiAccess: expected a list, got a string",
  ],
  ["empty key name", clusterYaml({ sshKey: "" }), "sshKey: expected a non-empty string, got 0 character(s)"],
  [
    "no zones",
    clusterYaml({ network: { zones: [] } }),
    "network.zones: expected at least one item, got 0 item(s)",
  ],
  [
    "boolean count",
    clusterYaml({ groups: { masters: { count: true, instanceType: "t3.medium" }, minions } }),
    "groups.masters.count: expected 1, 3 or 5: the masters form one etcd cluster, which an even size makes no safer (4 tolerate one failure, as 3 do) and more members make slower",
  ],
  ["a list", "- a\n", "expected a mapping, got a list"],
  ["empty file", "", "expected a mapping, got nothing (null)"],
];

const image = () => parse(readFileSync(fixtureSpec, "utf8"));
const imageCases: [string, (s: any) => void, string][] = [
  ["name a number", (s) => (s.name = 5), "name: expected a name, got a number"],
  ["missing base", (s) => delete s.base, "missing field base"],
  ["unknown field", (s) => (s.foo = 1), "unknown field foo"],
  [
    "missing suite",
    (s) => delete s.base.suite,
    'base: missing field suite; expected "bookworm" (the one suite kubebake supports now)',
  ],
  [
    "roles a string",
    (s) => (s.components[0].roles = "masters"),
    "components[0].roles: expected a list of roles, got a string",
  ],
  [
    "arch packages",
    (s) => (s.base.archPackages = { amd64: "x" }),
    "base.archPackages.amd64: expected a list, got a string",
  ],
  ["addons a list", (s) => (s.addons = []), "addons: expected a mapping, got a list"],
];

describe("schema problems in plain words", () => {
  test.each(clusterCases)("cluster spec: %s", (name, spec, expected) => {
    const message = messageOf(loadClusterSpec, `cluster-${name.replace(/\W+/g, "-")}`, spec);
    expect(message).toBe(expected);
    expect(message).not.toMatch(/Invalid|received|Too (small|big)|>=|<=/);
  });

  test.each(imageCases)("image spec: %s", (name, mutate, expected) => {
    const spec = image();
    mutate(spec);
    const message = messageOf(loadImageSpec, `image-${name.replace(/\W+/g, "-")}`, spec);
    expect(message).toBe(expected);
    expect(message).not.toMatch(/Invalid|received|Too (small|big)|>=|<=/);
  });
});
