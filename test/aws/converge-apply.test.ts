/**
 * An apply (or destroy) that fails at any mutating call leaves a state the next run converges from:
 * for every step N, fail the Nth mutating call, run again without failure, and check that a third run
 * changes nothing and that exactly one of everything exists. From every such state, the plan (or
 * destroy's dry run) lists exactly the changes the next run makes.
 *
 * A lost answer (the call succeeded, the caller never saw it) leaves what a failure before the next call
 * leaves, because a failed run undoes nothing: it matters only where the answer is an id AWS chose and
 * the next run must find the resource by its tags instead. Those steps run in both modes.
 *
 * The PKI is 24 or more identical writes in a row: the first, second and last stand for the rest
 * (representativeSteps).
 */
import { NODE_ENDPOINTS } from "../../src/launch/aws/desired";
import { PKI_FILE_NAMES } from "../../src/launch/aws/secrets";
import { tempDir } from "../helpers";
import {
  AWS_CHOSEN_ID,
  failingClients,
  InjectedFailure,
  inventory,
  list,
  representativeSteps,
  spec,
} from "./converge";
import { apply, clientsFor, registerAmi, writeSpec } from "./fixture";
import { startMoto, type Moto } from "./moto";

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
const dir = tempDir("aws-converge");

describe.each(["before", "after"] as const)("a failure %s a mutating call", (when) => {
  test(`apply converges after a failure ${when === "before" ? "at every mutating step (the first, second and last of the PKI's writes)" : "at every step that creates an id AWS chooses"}`, async () => {
    await moto.reset();
    const clean = clientsFor(moto.endpoint);
    const ami = await registerAmi(clean, "kubebake-1");
    const specPath = writeSpec(dir, { ...spec(), image: { ami } });
    const reference = await apply(clean, specPath);
    const steps = reference.mutating.length;
    const expected = await inventory(clean);
    // One write per PKI file, after the cluster id's: counted rather than fixed, as the PKI grows.
    const pkiWrites = reference.mutating.filter((call) => call === "ssm:PutParameter").length - 1;
    expect(pkiWrites).toBe(PKI_FILE_NAMES.length);
    // A new cluster's network is private by default: five endpoints (ssm, autoscaling, sts, ec2, s3), their
    // security group beside the two roles', no internet gateway.
    expect(expected).toEqual({
      vpcs: 1,
      subnets: 2,
      securityGroups: 3,
      internetGateways: 0,
      vpcEndpoints: 5,
      groups: 2,
      instances: 3,
      parameters: pkiWrites + 1, // the PKI and the cluster id
      zones: 1,
      buckets: 1,
      launchHooks: ["kubebake-etcd-voter ABANDON 900"],
      keys: 1,
      keyAliases: 1,
    });
    // The key is one of the steps failed at, before the parameters and templates it encrypts.
    const first = (call: string) => reference.mutating.indexOf(call);
    expect(first("kms:CreateKey")).toBeGreaterThan(-1);
    expect(first("kms:CreateKey")).toBeLessThan(first("kms:EnableKeyRotation"));
    expect(first("kms:EnableKeyRotation")).toBeLessThan(first("kms:CreateAlias"));
    expect(first("kms:CreateAlias")).toBeLessThan(first("iam:PutRolePolicy"));
    // The first ssm:PutParameter is the cluster id's (the key is tagged with the id); then the PKI's.
    const firstPkiWrite = reference.mutating.indexOf("ssm:PutParameter", first("ssm:PutParameter") + 1);
    expect(first("kms:CreateAlias")).toBeLessThan(firstPkiWrite);
    expect(first("kms:CreateAlias")).toBeLessThan(first("ec2:CreateLaunchTemplate"));

    const failures =
      when === "before"
        ? representativeSteps(reference.mutating)
        : reference.mutating.flatMap((call, index) => (AWS_CHOSEN_ID.test(call) ? [index + 1] : []));
    if (when === "before") {
      // Only the middles of the runs of like calls are left out (see representativeSteps): the PKI's
      // writes and the private network's endpoints (one run of five).
      const skipped = reference.mutating.filter((_, index) => !failures.includes(index + 1));
      expect({ steps, skipped: [...new Set(skipped)].sort(), count: skipped.length }).toEqual({
        steps,
        skipped: ["ec2:CreateVpcEndpoint", "ssm:PutParameter"],
        count: pkiWrites - 3 + (NODE_ENDPOINTS.length - 3),
      });
    } else expect(failures.length).toBe(16);
    for (const failAt of failures) {
      await moto.reset();
      const setup = clientsFor(moto.endpoint);
      const stepAmi = await registerAmi(setup, "kubebake-1");
      const path = writeSpec(dir, { ...spec(), image: { ami: stepAmi } });
      let at = failAt;
      const clients = failingClients(moto.endpoint, () => at, when);
      await expect(apply(clients, path)).rejects.toThrow(InjectedFailure);
      at = 0;
      // From any state a failure leaves, the plan lists exactly what the apply then does.
      const plan = await apply(clients, path, true);
      const second = await apply(clients, path);
      expect({ failAt, changes: list(second.changes) }).toEqual({ failAt, changes: list(plan.changes) });
      const third = await apply(clients, path);
      expect({ failAt, call: reference.mutating[failAt - 1], mutating: third.mutating }).toEqual({
        failAt,
        call: reference.mutating[failAt - 1],
        mutating: [],
      });
      expect({ failAt, ...(await inventory(clients)) }).toEqual({ failAt, ...expected });
    }
  }, 600_000);
});
