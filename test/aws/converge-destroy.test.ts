/**
 * A destroy that fails at any mutating call leaves a state the next destroy converges from, and from every
 * such state destroy's dry run lists exactly the changes the next destroy makes. The snapshot bucket holds
 * versions and a delete marker, so emptying it is one of the steps.
 */
import { tempDir } from "../helpers";
import {
  failingClients,
  InjectedFailure,
  inventory,
  keyStates,
  list,
  putSnapshots,
  representativeSteps,
  spec,
} from "./converge";
import { apply, clientsFor, destroy, registerAmi, writeSpec } from "./fixture";
import { startMoto, type Moto } from "./moto";

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
const dir = tempDir("aws-converge");

test("destroy converges after a failure at every mutating step and leaves nothing", async () => {
  await moto.reset();
  const clean = clientsFor(moto.endpoint);
  const ami = await registerAmi(clean, "kubebake-1");
  const specPath = writeSpec(dir, { ...spec(), image: { ami } });
  await apply(clean, specPath);
  await putSnapshots(clean);
  const reference = (await destroy(clean)).mutating;
  expect(reference).toEqual(
    expect.arrayContaining([
      "s3:DeleteObjects",
      "s3:DeleteBucket",
      "kms:DeleteAlias",
      "kms:ScheduleKeyDeletion",
      // The private network's endpoints, one call each: the first, second and last are failed at.
      "ec2:DeleteVpcEndpoints",
    ]),
  );
  expect(reference.filter((call) => call === "ec2:DeleteVpcEndpoints")).toHaveLength(5);
  const steps = representativeSteps(reference);
  const empty = {
    ...{ vpcs: 0, subnets: 0, securityGroups: 0, internetGateways: 0, vpcEndpoints: 0 },
    ...{ groups: 0, instances: 0, parameters: 0, zones: 0 },
    ...{ buckets: 0, launchHooks: [], keys: 0, keyAliases: 0 },
  };
  expect(await inventory(clean)).toEqual(empty);
  // The key is not gone but waits out KMS's window: PendingDeletion, no alias left naming it.
  expect(await keyStates(clean)).toEqual(["PendingDeletion"]);

  expect(steps.length).toBeGreaterThan(15);
  for (const failAt of steps) {
    await moto.reset();
    const setup = clientsFor(moto.endpoint);
    const stepAmi = await registerAmi(setup, "kubebake-1");
    await apply(setup, writeSpec(dir, { ...spec(), image: { ami: stepAmi } }));
    await putSnapshots(setup);
    let at = failAt;
    const clients = failingClients(moto.endpoint, () => at);
    await expect(destroy(clients)).rejects.toThrow(InjectedFailure);
    at = 0;
    const planned = await destroy(clients, "demo", true);
    const second = await destroy(clients);
    expect({ failAt, changes: list(second.changes) }).toEqual({ failAt, changes: list(planned.changes) });
    expect({ failAt, ...(await inventory(clients)) }).toEqual({ failAt, ...empty });
    expect({ failAt, keys: await keyStates(clients) }).toEqual({ failAt, keys: ["PendingDeletion"] });
    expect({ failAt, changes: (await destroy(clients)).changes }).toEqual({ failAt, changes: [] });
  }
}, 600_000);
