/**
 * The discovery function's settings (environment in, environment out) and the DNS names it manages:
 * what is accepted, what is refused with which message, and the one form names take.
 */
import { discoveryConfigFromEnv, discoveryEnvironment } from "../../src/discover/config";
import {
  CLUSTER_NAME,
  DNS_LABEL,
  discoveryRecords,
  domainLabels,
  etcdRecordName,
  normaliseName,
  recordName,
  ROLES,
  zoneName,
} from "../../src/discover/names";

const env = { CLUSTER_NAME: "demo", HOSTED_ZONE_ID: "Z1" };

describe("configuration from the environment", () => {
  test("defaults: domain k8s, TTL 30, empty groups deleted; a bare zone id is kept as given", () => {
    expect(discoveryConfigFromEnv(env)).toEqual({
      cluster: "demo",
      zoneId: "Z1",
      domain: "k8s",
      ttl: 30,
      emptyGroup: "delete",
    });
  });

  test("round trip: the environment deploy gives the function is read back as the same settings", () => {
    const config = {
      cluster: "prod-1",
      zoneId: "Z0123",
      domain: "example.internal",
      ttl: 0,
      emptyGroup: "keep" as const,
    };
    expect(discoveryEnvironment(config)).toEqual({
      CLUSTER_NAME: "prod-1",
      HOSTED_ZONE_ID: "Z0123",
      DISCOVERY_DOMAIN: "example.internal",
      RECORD_TTL: "0",
      EMPTY_GROUP_POLICY: "keep",
    });
    expect(discoveryConfigFromEnv(discoveryEnvironment(config))).toEqual(config);
  });

  test("the /hostedzone/ prefix the APIs return is removed, only as a prefix", () => {
    expect(discoveryConfigFromEnv({ ...env, HOSTED_ZONE_ID: "/hostedzone/Z9" }).zoneId).toBe("Z9");
    expect(discoveryConfigFromEnv({ ...env, HOSTED_ZONE_ID: "Z9/hostedzone/" }).zoneId).toBe(
      "Z9/hostedzone/",
    );
  });

  test.each(["CLUSTER_NAME", "HOSTED_ZONE_ID"])(
    "%s missing or empty: refused, naming the variable",
    (key) => {
      const without: Record<string, string> = { ...env };
      delete without[key];
      expect(() => discoveryConfigFromEnv(without)).toThrow(`environment variable ${key} is not set`);
      expect(() => discoveryConfigFromEnv({ ...env, [key]: "" })).toThrow(
        `environment variable ${key} is not set`,
      );
    },
  );

  test("a cluster name that is not one lower-case DNS label of at most 40 characters is refused, quoted", () => {
    expect(() => discoveryConfigFromEnv({ ...env, CLUSTER_NAME: "Demo" })).toThrow(
      `CLUSTER_NAME "Demo" is not a cluster name (lower-case letters, digits and '-', at most 40)`,
    );
    expect(() => discoveryConfigFromEnv({ ...env, CLUSTER_NAME: "a".repeat(41) })).toThrow(
      /is not a cluster name/,
    );
    expect(discoveryConfigFromEnv({ ...env, CLUSTER_NAME: "a".repeat(40) }).cluster).toBe("a".repeat(40));
  });

  test("TTL: whole seconds from 0 to 2^31-1; anything else refused, quoting the value", () => {
    const ttl = (RECORD_TTL: string) => discoveryConfigFromEnv({ ...env, RECORD_TTL }).ttl;
    expect(ttl("0")).toBe(0);
    expect(ttl("300")).toBe(300);
    expect(ttl("2147483647")).toBe(2147483647);
    for (const bad of ["-1", "2147483648", "1.5", "thirty"]) {
      expect(() => ttl(bad)).toThrow(`RECORD_TTL ${bad} is not a TTL`);
    }
  });

  test("empty-group policy: delete or keep; anything else refused, naming the choices", () => {
    const policy = (EMPTY_GROUP_POLICY: string) => discoveryConfigFromEnv({ ...env, EMPTY_GROUP_POLICY });
    expect(policy("keep").emptyGroup).toBe("keep");
    expect(policy("delete").emptyGroup).toBe("delete");
    expect(() => policy("Keep")).toThrow("EMPTY_GROUP_POLICY Keep: expected delete or keep");
  });

  test("the domain is lower-cased, its trailing dot dropped, its labels checked", () => {
    expect(discoveryConfigFromEnv({ ...env, DISCOVERY_DOMAIN: "Cluster.Example." }).domain).toBe(
      "cluster.example",
    );
    expect(() => discoveryConfigFromEnv({ ...env, DISCOVERY_DOMAIN: "a..b" })).toThrow(
      'domain "a..b": bad label ""',
    );
  });
});

describe("names", () => {
  test("the roles are masters and minions", () => {
    expect(ROLES).toEqual(["masters", "minions"]);
  });

  test("cluster names: 1 to 40 lower-case letters, digits and inner hyphens", () => {
    for (const good of ["a", "0", "demo", "prod-1", "a-b-c", "a".repeat(40), "9-lives"])
      expect({ good, ok: CLUSTER_NAME.test(good) }).toEqual({ good, ok: true });
    for (const bad of ["", "-a", "a-", "-", "Demo", "a_b", "a.b", "a".repeat(41), "ab ", " ab"])
      expect({ bad, ok: CLUSTER_NAME.test(bad) }).toEqual({ bad, ok: false });
  });

  test("DNS labels: 1 to 63 lower-case letters, digits and inner hyphens", () => {
    for (const good of ["a", "k8s", "x-1", "a".repeat(63)])
      expect({ good, ok: DNS_LABEL.test(good) }).toEqual({ good, ok: true });
    for (const bad of ["", "-a", "a-", "A", "a_b", "a".repeat(64), "a b"])
      expect({ bad, ok: DNS_LABEL.test(bad) }).toEqual({ bad, ok: false });
  });

  test("a domain's labels: lower-cased, with or without the trailing dot; a bad label is named", () => {
    expect(domainLabels("Example.Internal.")).toEqual(["example", "internal"]);
    expect(domainLabels("k8s")).toEqual(["k8s"]);
    expect(() => domainLabels("example..internal")).toThrow('domain "example..internal": bad label ""');
    expect(() => domainLabels("k8s..")).toThrow('domain "k8s..": bad label ""');
    expect(() => domainLabels("bad_label.k8s")).toThrow('domain "bad_label.k8s": bad label "bad_label"');
  });

  test("zone and record names end with a dot; a record name longer than 255 characters is refused", () => {
    expect(zoneName("demo", "K8s.")).toBe("demo.k8s.");
    expect(recordName("masters", "demo", "example.internal")).toBe("masters.demo.example.internal.");
    // "masters." + "demo." + domain + "." is 14 characters more than the domain.
    const domain = (lastLabel: number) =>
      ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(lastLabel)].join(".");
    expect(recordName("masters", "demo", domain(49))).toHaveLength(255);
    const tooLong = domain(50);
    expect(() => recordName("masters", "demo", tooLong)).toThrow(/: longer than 255 characters$/);
    // "etcd." is three characters shorter than "masters.": the same limit, checked the same way.
    expect(etcdRecordName("demo", domain(52))).toHaveLength(255);
    expect(() => etcdRecordName("demo", domain(53))).toThrow(
      /^etcd\.demo\.a+.*: longer than 255 characters$/,
    );
    expect(() => discoveryRecords("demo", tooLong)).toThrow(
      /^masters\.demo\..*: longer than 255 characters$/,
    );
    expect(discoveryRecords("demo", domain(49)).map((r) => r.name.length)).toEqual([255, 255, 252]);
  });

  test("names as Route 53 lists them: any case, octal escapes, with or without the trailing dot", () => {
    expect(normaliseName("Masters.Demo.K8S")).toBe("masters.demo.k8s.");
    expect(normaliseName("masters.demo.k8s.")).toBe("masters.demo.k8s.");
    expect(normaliseName("\\052.demo.k8s.")).toBe("*.demo.k8s.");
    expect(normaliseName("a\\100b\\0411")).toBe("a@b!1.");
    expect(normaliseName("\\101BC")).toBe("abc.");
    // Not an escape: fewer than three digits.
    expect(normaliseName("a\\05")).toBe("a\\05.");
  });
});
