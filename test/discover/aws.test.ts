/**
 * The AWS ports as the reconciler sees them: the exact requests sent to Auto Scaling, EC2 and Route 53,
 * every page of every listing turned, SDK answers mapped to records, and SDK errors classified.
 */
import {
  awsDiscoveryPorts,
  classifyAwsError,
  PAGE_SIZES,
  type DiscoveryClients,
} from "../../src/discover/aws";
import { RecordConflict, Rejected, Transient } from "../../src/discover/reconcile";

// Commands that only keep their input, named like the SDK's: the ports build requests, the fake clients
// below answer them; loading the real SDK clients would only slow every run down (mutation testing).
function mockCommands(...names: string[]) {
  const commands: Record<string, unknown> = {};
  for (const name of names) {
    commands[name] = {
      [name]: class {
        constructor(readonly input: unknown) {}
      },
    }[name];
  }
  return commands;
}
jest.mock("@aws-sdk/client-auto-scaling", () =>
  mockCommands("AutoScalingClient", "DescribeAutoScalingGroupsCommand"),
);
jest.mock("@aws-sdk/client-ec2", () => mockCommands("EC2Client", "DescribeInstancesCommand"));
jest.mock("@aws-sdk/client-route-53", () =>
  mockCommands("Route53Client", "ListResourceRecordSetsCommand", "ChangeResourceRecordSetsCommand"),
);

type Answer = (input: any) => unknown;

/** One fake SDK client for all three services: answers by command name, in order, and records each call. */
function fakeClients(answers: Record<string, Answer[]>) {
  const calls: { command: string; input: any }[] = [];
  const client = {
    send: async (command: { constructor: { name: string }; input: unknown }) => {
      const name = command.constructor.name;
      calls.push({ command: name, input: command.input });
      const answer = answers[name]?.shift();
      if (!answer) throw new Error(`unexpected ${name}`);
      return answer(command.input);
    },
  };
  const clients = { autoScaling: client, ec2: client, route53: client } as unknown as DiscoveryClients;
  return { clients, calls };
}

const sdkError = (name: string, extra: Record<string, unknown> = {}, message = `${name} happened`) =>
  Object.assign(new Error(message), { name, $metadata: {}, ...extra });

describe("classifying SDK errors", () => {
  test.each([
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "PriorRequestNotComplete",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "TimeoutError",
    "RequestTimeout",
    "ECONNRESET",
    "ECONNREFUSED",
    "EPIPE",
    "ETIMEDOUT",
  ])("%s (HTTP 400, no fault) is Transient, named in its message, the SDK error its cause", (name) => {
    const original = sdkError(name, { $metadata: { httpStatusCode: 400 } }, "try later");
    const classified = classifyAwsError(original);
    expect(classified).toBeInstanceOf(Transient);
    expect((classified as Error).message).toBe(`${name}: try later`);
    expect((classified as Error).cause).toBe(original);
  });

  test.each(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT"])(
    "a Node network error (code %s on a plain Error) is Transient",
    (code) => {
      const original = Object.assign(new Error("socket hang up"), { code });
      expect(classifyAwsError(original)).toEqual(new Transient("Error: socket hang up"));
    },
  );

  test("HTTP 500 and above, 429, or a server fault are Transient; 499 and other 4xx are not", () => {
    const status = (httpStatusCode: number) => sdkError("Unknown", { $metadata: { httpStatusCode } });
    expect(classifyAwsError(status(500))).toBeInstanceOf(Transient);
    expect(classifyAwsError(status(503))).toBeInstanceOf(Transient);
    expect(classifyAwsError(status(429))).toBeInstanceOf(Transient);
    expect(classifyAwsError(sdkError("Unknown", { $fault: "server" }))).toBeInstanceOf(Transient);
    for (const code of [499, 430, 428, 400]) {
      const error = status(code);
      expect(classifyAwsError(error)).toBe(error);
    }
    const clientFault = sdkError("Unknown", { $fault: "client", $metadata: { httpStatusCode: 403 } });
    expect(classifyAwsError(clientFault)).toBe(clientFault);
  });

  test("an error without metadata or code, and anything that is not an Error, stay what they were", () => {
    const plain = new Error("boom");
    expect(classifyAwsError(plain)).toBe(plain);
    const otherCode = Object.assign(new Error("no such file"), { code: "ENOENT" });
    expect(classifyAwsError(otherCode)).toBe(otherCode);
    expect(classifyAwsError("a string")).toBe("a string");
    expect(classifyAwsError(undefined)).toBeUndefined();
  });

  test("InvalidChangeBatch or InvalidInput: a lost race (any case) is a RecordConflict with Route 53's message", () => {
    for (const name of ["InvalidChangeBatch", "InvalidInput"]) {
      const message = "Tried to delete resource record set [name='masters.demo.k8s.'] BUT IT WAS NOT FOUND";
      const original = sdkError(name, { $metadata: { httpStatusCode: 400 } }, message);
      const classified = classifyAwsError(original);
      expect(classified).toBeInstanceOf(RecordConflict);
      expect((classified as Error).message).toBe(message);
      expect((classified as Error).cause).toBe(original);
    }
  });

  test("InvalidChangeBatch or InvalidInput for another reason is Rejected, named in its message", () => {
    for (const name of ["InvalidChangeBatch", "InvalidInput"]) {
      const original = sdkError(name, { $metadata: { httpStatusCode: 400 } }, "Invalid Resource Record");
      const classified = classifyAwsError(original);
      expect(classified).toBeInstanceOf(Rejected);
      expect((classified as Error).message).toBe(`${name}: Invalid Resource Record`);
      expect((classified as Error).cause).toBe(original);
    }
    // A lost-race phrase under another error name is not a Route 53 batch answer.
    const other = sdkError("AccessDenied", {}, "but it was not found");
    expect(classifyAwsError(other)).toBe(other);
  });
});

describe("the ports send the exact requests and turn every page", () => {
  test("groups: filtered by the KubernetesCluster tag, every page, members and Role tag mapped", async () => {
    const { clients, calls } = fakeClients({
      DescribeAutoScalingGroupsCommand: [
        () => ({
          AutoScalingGroups: [
            {
              AutoScalingGroupName: "kubebake-demo-masters",
              Tags: [
                { Key: "KubernetesCluster", Value: "demo" },
                { Key: "Role", Value: "masters" },
              ],
              Instances: [
                { InstanceId: "i-1", LifecycleState: "InService", HealthStatus: "Healthy" },
                { InstanceId: "i-2", LifecycleState: "Pending", HealthStatus: "Unhealthy" },
              ],
            },
          ],
          NextToken: "page-2",
        }),
        () => ({
          AutoScalingGroups: [{ AutoScalingGroupName: "untagged", Instances: [{}] }, {}],
        }),
      ],
    });
    const groups = await awsDiscoveryPorts(clients, { ...PAGE_SIZES, groups: 1 }).groups("demo");
    expect(groups).toEqual([
      {
        name: "kubebake-demo-masters",
        role: "masters",
        members: [
          { instanceId: "i-1", lifecycleState: "InService", healthStatus: "Healthy" },
          { instanceId: "i-2", lifecycleState: "Pending", healthStatus: "Unhealthy" },
        ],
      },
      {
        name: "untagged",
        role: undefined,
        members: [{ instanceId: "", lifecycleState: "", healthStatus: "" }],
      },
      { name: "", role: undefined, members: [] },
    ]);
    expect(calls).toEqual([
      {
        command: "DescribeAutoScalingGroupsCommand",
        input: { Filters: [{ Name: "tag:KubernetesCluster", Values: ["demo"] }], MaxRecords: 1 },
      },
      {
        command: "DescribeAutoScalingGroupsCommand",
        input: {
          Filters: [{ Name: "tag:KubernetesCluster", Values: ["demo"] }],
          MaxRecords: 1,
          NextToken: "page-2",
        },
      },
    ]);
  });

  test("groups: an empty answer is no group; the default page size is the API's maximum, 100", async () => {
    const { clients, calls } = fakeClients({ DescribeAutoScalingGroupsCommand: [() => ({})] });
    expect(await awsDiscoveryPorts(clients).groups("demo")).toEqual([]);
    expect(calls[0]!.input.MaxRecords).toBe(100);
  });

  test("private IPs: pending (booting) and running instances of the cluster, every page; instances without an id or IP left out", async () => {
    const { clients, calls } = fakeClients({
      DescribeInstancesCommand: [
        () => ({
          Reservations: [
            { Instances: [{ InstanceId: "i-1", PrivateIpAddress: "10.0.0.1" }, { InstanceId: "i-no-ip" }] },
            {},
          ],
          NextToken: "page-2",
        }),
        () => ({
          Reservations: [
            {
              Instances: [
                { PrivateIpAddress: "10.0.0.9" },
                { InstanceId: "i-2", PrivateIpAddress: "10.0.0.2" },
              ],
            },
          ],
        }),
      ],
    });
    const ips = await awsDiscoveryPorts(clients, { ...PAGE_SIZES, instances: 5 }).privateIps("demo");
    expect([...ips]).toEqual([
      ["i-1", "10.0.0.1"],
      ["i-2", "10.0.0.2"],
    ]);
    const filters = [
      { Name: "tag:KubernetesCluster", Values: ["demo"] },
      // pending too: a master held in Pending:Wait may still be booting, and it belongs in etcd.
      { Name: "instance-state-name", Values: ["pending", "running"] },
    ];
    expect(calls).toEqual([
      { command: "DescribeInstancesCommand", input: { Filters: filters, MaxResults: 5 } },
      {
        command: "DescribeInstancesCommand",
        input: { Filters: filters, MaxResults: 5, NextToken: "page-2" },
      },
    ]);
  });

  test("private IPs: an empty answer is no IP; the default page size is the API's maximum, 1000", async () => {
    const { clients, calls } = fakeClients({ DescribeInstancesCommand: [() => ({})] });
    expect((await awsDiscoveryPorts(clients).privateIps("demo")).size).toBe(0);
    expect(calls[0]!.input.MaxResults).toBe(1000);
  });

  test("records: every type, names normalised, aliases and set identifiers kept, pages continued where Route 53 says", async () => {
    const { clients, calls } = fakeClients({
      ListResourceRecordSetsCommand: [
        () => ({
          ResourceRecordSets: [
            { Name: "Masters.Demo.K8S", Type: "A", TTL: 30, ResourceRecords: [{ Value: "10.0.0.1" }, {}] },
            { Name: "\\052.demo.k8s.", Type: "CNAME", TTL: 60, ResourceRecords: [{ Value: "lb.example." }] },
          ],
          IsTruncated: true,
          NextRecordName: "minions.demo.k8s.",
          NextRecordType: "A",
          NextRecordIdentifier: "blue",
        }),
        () => ({
          ResourceRecordSets: [
            { Name: "minions.demo.k8s.", Type: "A", AliasTarget: { DNSName: "lb.", HostedZoneId: "Z2" } },
            { Name: "minions.demo.k8s.", Type: "A", TTL: 5, SetIdentifier: "", ResourceRecords: [] },
            {},
          ],
          IsTruncated: false,
        }),
      ],
    });
    const records = await awsDiscoveryPorts(clients, { ...PAGE_SIZES, records: 2 }).readRecords("Z1");
    expect(records).toEqual([
      { name: "masters.demo.k8s.", type: "A", ttl: 30, values: ["10.0.0.1", ""] },
      { name: "*.demo.k8s.", type: "CNAME", ttl: 60, values: ["lb.example."] },
      { name: "minions.demo.k8s.", type: "A", ttl: 0, values: [], alias: true },
      { name: "minions.demo.k8s.", type: "A", ttl: 5, values: [], setIdentifier: "" },
      { name: ".", type: "", ttl: 0, values: [] },
    ]);
    expect(records[0]).not.toHaveProperty("alias");
    expect(records[0]).not.toHaveProperty("setIdentifier");
    expect(calls).toEqual([
      { command: "ListResourceRecordSetsCommand", input: { HostedZoneId: "Z1", MaxItems: 2 } },
      {
        command: "ListResourceRecordSetsCommand",
        input: {
          HostedZoneId: "Z1",
          MaxItems: 2,
          StartRecordName: "minions.demo.k8s.",
          StartRecordType: "A",
          StartRecordIdentifier: "blue",
        },
      },
    ]);
  });

  test("records: an empty zone is no record; the default page size is the API's maximum, 300", async () => {
    const { clients, calls } = fakeClients({ ListResourceRecordSetsCommand: [() => ({})] });
    expect(await awsDiscoveryPorts(clients).readRecords("Z1")).toEqual([]);
    expect(calls).toEqual([
      { command: "ListResourceRecordSetsCommand", input: { HostedZoneId: "Z1", MaxItems: 300 } },
    ]);
  });

  test("a change is one batch: the actions in order, each record with its name, type, TTL and values", async () => {
    const { clients, calls } = fakeClients({ ChangeResourceRecordSetsCommand: [() => ({})] });
    await awsDiscoveryPorts(clients).changeRecords("Z1", [
      { action: "DELETE", record: { name: "masters.demo.k8s.", type: "A", ttl: 60, values: ["10.0.0.1"] } },
      {
        action: "CREATE",
        record: { name: "masters.demo.k8s.", type: "A", ttl: 30, values: ["10.0.0.1", "10.0.0.2"] },
      },
    ]);
    expect(calls).toEqual([
      {
        command: "ChangeResourceRecordSetsCommand",
        input: {
          HostedZoneId: "Z1",
          ChangeBatch: {
            Comment: "kubebake dns discovery",
            Changes: [
              {
                Action: "DELETE",
                ResourceRecordSet: {
                  Name: "masters.demo.k8s.",
                  Type: "A",
                  TTL: 60,
                  ResourceRecords: [{ Value: "10.0.0.1" }],
                },
              },
              {
                Action: "CREATE",
                ResourceRecordSet: {
                  Name: "masters.demo.k8s.",
                  Type: "A",
                  TTL: 30,
                  ResourceRecords: [{ Value: "10.0.0.1" }, { Value: "10.0.0.2" }],
                },
              },
            ],
          },
        },
      },
    ]);
  });

  test.each([
    [
      "groups",
      "DescribeAutoScalingGroupsCommand",
      (p: ReturnType<typeof awsDiscoveryPorts>) => p.groups("demo"),
    ],
    [
      "privateIps",
      "DescribeInstancesCommand",
      (p: ReturnType<typeof awsDiscoveryPorts>) => p.privateIps("demo"),
    ],
    [
      "readRecords",
      "ListResourceRecordSetsCommand",
      (p: ReturnType<typeof awsDiscoveryPorts>) => p.readRecords("Z1"),
    ],
    [
      "changeRecords",
      "ChangeResourceRecordSetsCommand",
      (p: ReturnType<typeof awsDiscoveryPorts>) =>
        p.changeRecords("Z1", [
          { action: "CREATE", record: { name: "m.", type: "A", ttl: 30, values: ["10.0.0.1"] } },
        ]),
    ],
  ])("%s: an SDK failure reaches the reconciler classified", async (_, command, use) => {
    const { clients } = fakeClients({
      [command]: [
        () => {
          throw sdkError("Throttling", { $metadata: { httpStatusCode: 400 } }, "Rate exceeded");
        },
      ],
    });
    await expect(use(awsDiscoveryPorts(clients))).rejects.toEqual(new Transient("Throttling: Rate exceeded"));
  });

  test("a change that lost a race is a RecordConflict", async () => {
    const { clients } = fakeClients({
      ChangeResourceRecordSetsCommand: [
        () => {
          throw sdkError(
            "InvalidChangeBatch",
            {},
            "[Tried to create resource record set but it already exists]",
          );
        },
      ],
    });
    const change = awsDiscoveryPorts(clients).changeRecords("Z1", [
      { action: "CREATE", record: { name: "m.", type: "A", ttl: 30, values: ["10.0.0.1"] } },
    ]);
    await expect(change).rejects.toBeInstanceOf(RecordConflict);
  });

  test("sleep waits the given milliseconds on the real clock; now is that clock", async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    try {
      const ports = awsDiscoveryPorts(fakeClients({}).clients);
      expect(ports.now!()).toBe(1_000_000);
      let slept = false;
      const sleeping = ports.sleep(250).then(() => (slept = true));
      await jest.advanceTimersByTimeAsync(249);
      expect(slept).toBe(false);
      await jest.advanceTimersByTimeAsync(1);
      await sleeping;
      expect(slept).toBe(true);
      expect(ports.now!()).toBe(1_000_250);
    } finally {
      jest.useRealTimers();
    }
  });
});
