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
  expect(route53.get("masters.demo.k8s.")?.values).toEqual(["10.0.0.1"]);
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
