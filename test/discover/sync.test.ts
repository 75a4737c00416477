/** `kubebake dns sync`: through the deployed function (serialized), locally only when none is deployed. */
import type { LambdaClient } from "@aws-sdk/client-lambda";
import { KubebakeError } from "../../src/errors";
import { dnsSync, SYNC_EVENT } from "../../src/discover/sync";
import { demoOptions, immediate, modelPorts, prng, Route53Model, type Truth } from "./model";

const options = demoOptions;
const truth: Truth = {
  groups: [
    {
      name: "m",
      role: "masters",
      members: [{ instanceId: "i-1", lifecycleState: "InService", healthStatus: "Healthy" }],
    },
  ],
  ips: new Map([["i-1", "10.0.0.1"]]),
};
const error = (name: string) => Object.assign(new Error(name), { name, $metadata: {} });

function lambda(answers: Record<string, (input: any) => unknown>) {
  const calls: { command: string; input: any }[] = [];
  const client = {
    send: async (command: { constructor: { name: string }; input: unknown }) => {
      calls.push({ command: command.constructor.name, input: command.input });
      return answers[command.constructor.name]!(command.input);
    },
  } as unknown as LambdaClient;
  return { client, calls };
}

test("no function deployed (nothing else writes): reconciles from here", async () => {
  const route53 = new Route53Model(prng(1));
  const { client, calls } = lambda({
    GetFunctionCommand: () => {
      throw error("ResourceNotFoundException");
    },
  });
  const result = await dnsSync({
    lambda: client,
    functionName: "kubebake-demo-dns-discovery",
    ports: () => modelPorts(immediate, route53, () => truth),
    options,
    sleep: async () => {},
  });
  expect(result.via).toBe("local");
  expect(result.desired).toEqual({ masters: ["10.0.0.1"], minions: [], etcd: ["10.0.0.1"] });
  expect(route53.get("masters.demo.k8s.")?.values).toEqual(["10.0.0.1"]);
  expect(route53.get("etcd.demo.k8s.")?.values).toEqual(["10.0.0.1"]);
  expect(calls.map((c) => c.command)).toEqual(["GetFunctionCommand"]);
});

test("a deployed function is invoked instead, waiting while its one slot is busy; nothing is written from here", async () => {
  const route53 = new Route53Model(prng(1));
  let busy = 2;
  const payload = {
    desired: { masters: ["10.0.0.1"], minions: [] },
    written: [],
    conflicts: 0,
    throttles: 0,
  };
  const { client, calls } = lambda({
    GetFunctionCommand: () => ({ Configuration: {} }),
    InvokeCommand: () => {
      if (busy-- > 0) throw error("TooManyRequestsException");
      return { Payload: new TextEncoder().encode(JSON.stringify(payload)) };
    },
  });
  const result = await dnsSync({
    lambda: client,
    functionName: "kubebake-demo-dns-discovery",
    ports: () => modelPorts(immediate, route53, () => truth),
    options,
    sleep: async () => {},
  });
  expect(result).toEqual({
    via: "function",
    desired: payload.desired,
    writes: [],
    conflicts: 0,
    throttles: 0,
  });
  expect(route53.calls).toEqual({ list: 0, change: 0 });
  const invokes = calls.filter((c) => c.command === "InvokeCommand");
  expect(invokes).toHaveLength(3);
  expect(invokes[0]!.input.InvocationType).toBe("RequestResponse");
  expect(JSON.parse(new TextDecoder().decode(invokes[0]!.input.Payload))).toEqual(SYNC_EVENT);
});

test("a failed invocation exits 7 with the function's error and log tail", async () => {
  const { client } = lambda({
    GetFunctionCommand: () => ({ Configuration: {} }),
    InvokeCommand: () => ({
      FunctionError: "Unhandled",
      LogResult: Buffer.from('{"level":"error","msg":"record not reconciled"}').toString("base64"),
      Payload: new TextEncoder().encode(
        JSON.stringify({ errorType: "ReconcileFailed", errorMessage: "masters: gave up" }),
      ),
    }),
  });
  const run = dnsSync({
    lambda: client,
    functionName: "f",
    ports: () => {
      throw new Error("not used");
    },
    options,
    sleep: async () => {},
  });
  await expect(run).rejects.toThrow(KubebakeError);
  await expect(run).rejects.toMatchObject({
    exitCode: 7,
    message: expect.stringMatching(/masters: gave up\n.*record not reconciled/),
  });
});

const deployed = (invoke: (input: any) => unknown) =>
  lambda({ GetFunctionCommand: () => ({ Configuration: {} }), InvokeCommand: invoke });
const answer = (payload: unknown) => ({ Payload: new TextEncoder().encode(JSON.stringify(payload)) });
const notUsed = () => {
  throw new Error("not used");
};

test("the function is looked up and invoked by its name, synchronously, with its log tail; the answer is passed on", async () => {
  const { client, calls } = deployed(() =>
    answer({
      desired: { masters: ["10.0.0.1"], minions: ["10.0.0.2"] },
      written: [{ name: "m" }],
      conflicts: 2,
      throttles: 3,
    }),
  );
  const result = await dnsSync({
    lambda: client,
    functionName: "fn",
    ports: notUsed,
    options,
    sleep: async () => {},
  });
  expect(result).toEqual({
    via: "function",
    desired: { masters: ["10.0.0.1"], minions: ["10.0.0.2"] },
    writes: [{ name: "m" }],
    conflicts: 2,
    throttles: 3,
  });
  expect(calls.map((c) => [c.command, c.input.FunctionName])).toEqual([
    ["GetFunctionCommand", "fn"],
    ["InvokeCommand", "fn"],
  ]);
  expect(calls[1]!.input).toMatchObject({ InvocationType: "RequestResponse", LogType: "Tail" });
  // An EventBridge-shaped event, so that the function logs the CLI as its trigger.
  expect(JSON.parse(new TextDecoder().decode(calls[1]!.input.Payload))).toEqual({
    source: "kubebake.cli",
    "detail-type": "kubebake dns sync",
    detail: {},
  });
});

test("a lookup that fails for another reason than a missing function fails as it was, nothing invoked or written", async () => {
  const route53 = new Route53Model(prng(1));
  const denied = error("AccessDeniedException");
  const { client, calls } = lambda({
    GetFunctionCommand: () => {
      throw denied;
    },
  });
  const run = dnsSync({
    lambda: client,
    functionName: "fn",
    ports: () => modelPorts(immediate, route53, () => truth),
    options,
    sleep: async () => {},
  });
  await expect(run).rejects.toBe(denied);
  expect(calls).toHaveLength(1);
  expect(route53.calls).toEqual({ list: 0, change: 0 });
});

describe("no function deployed: a local reconciliation that fails", () => {
  const missing = () =>
    lambda({
      GetFunctionCommand: () => {
        throw error("ResourceNotFoundException");
      },
    }).client;

  test("exits 7 with the records that were not reconciled", async () => {
    const route53 = new Route53Model(prng(1), { throttleRate: 1 });
    const run = dnsSync({
      lambda: missing(),
      functionName: "fn",
      ports: () => modelPorts(immediate, route53, () => truth),
      options: { ...options, maxAttempts: 1 },
      sleep: async () => {},
    });
    await expect(run).rejects.toThrow(KubebakeError);
    await expect(run).rejects.toMatchObject({
      exitCode: 7,
      message: expect.stringMatching(
        /^dns sync: masters\.demo\.k8s\.: gave up after 1 attempts: Transient: /,
      ),
    });
  });

  test("any other error (a bug, a bad option) is passed on as it was", async () => {
    const bug = new Error("no ports");
    const run = dnsSync({
      lambda: missing(),
      functionName: "fn",
      ports: () => {
        throw bug;
      },
      options,
      sleep: async () => {},
    });
    await expect(run).rejects.toBe(bug);
  });
});

describe("while the function's one slot is busy", () => {
  /** A clock that only the waits move. */
  function clocked() {
    let now = 1_000_000;
    const spy = jest.spyOn(Date, "now").mockImplementation(() => now);
    const sleeps: number[] = [];
    const sleep = async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    };
    return { sleeps, sleep, restore: () => spy.mockRestore() };
  }

  test("waits 1 s, 2 s… at most 5 s between tries, and gives up with the busy error once busyForMs has passed", async () => {
    const clock = clocked();
    try {
      const busy = error("TooManyRequestsException");
      const { client, calls } = deployed(() => {
        throw busy;
      });
      const run = dnsSync({
        lambda: client,
        functionName: "fn",
        ports: notUsed,
        options,
        sleep: clock.sleep,
        busyForMs: 10_000,
      });
      await expect(run).rejects.toBe(busy);
      // After 10 s of waiting it is exactly at the limit, not past it: one more wait, then it gives up.
      expect(clock.sleeps).toEqual([1000, 2000, 3000, 4000, 5000]);
      expect(calls.filter((c) => c.command === "InvokeCommand")).toHaveLength(6);
    } finally {
      clock.restore();
    }
  });

  test("by default keeps trying for 90 s (the function's timeout is 60 s)", async () => {
    const clock = clocked();
    try {
      const { client } = deployed(() => {
        throw error("TooManyRequestsException");
      });
      const run = dnsSync({
        lambda: client,
        functionName: "fn",
        ports: notUsed,
        options,
        sleep: clock.sleep,
      });
      await expect(run).rejects.toThrow("TooManyRequestsException");
      expect(clock.sleeps.reduce((a, b) => a + b, 0)).toBe(95_000);
    } finally {
      clock.restore();
    }
  });

  test("any other invocation error fails at once, without waiting", async () => {
    const sleeps: number[] = [];
    const denied = error("AccessDeniedException");
    const { client } = deployed(() => {
      throw denied;
    });
    const run = dnsSync({
      lambda: client,
      functionName: "fn",
      ports: notUsed,
      options,
      sleep: async (ms) => void sleeps.push(ms),
    });
    await expect(run).rejects.toBe(denied);
    expect(sleeps).toEqual([]);
  });
});

test("a failed invocation without an error message or a log tail names the function's error kind alone", async () => {
  for (const reply of [
    { FunctionError: "Unhandled" },
    { FunctionError: "Unhandled", ...answer({}), LogResult: "" },
  ]) {
    const { client } = deployed(() => reply);
    const run = dnsSync({
      lambda: client,
      functionName: "fn",
      ports: notUsed,
      options,
      sleep: async () => {},
    });
    await expect(run).rejects.toMatchObject({
      exitCode: 7,
      message: "dns sync: the function fn failed: Unhandled",
    });
  }
});

test("a failed invocation's log tail is decoded and trimmed below the error message", async () => {
  const { client } = deployed(() => ({
    FunctionError: "Unhandled",
    LogResult: Buffer.from("\nSTART\nline two\n\n").toString("base64"),
    ...answer({ errorMessage: "boom" }),
  }));
  const run = dnsSync({ lambda: client, functionName: "fn", ports: notUsed, options, sleep: async () => {} });
  await expect(run).rejects.toMatchObject({
    message: "dns sync: the function fn failed: boom\nSTART\nline two",
  });
});
