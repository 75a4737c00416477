/**
 * A plan lists exactly the changes the run makes: `cluster plan` on a fresh account and the apply that
 * follows, and `cluster destroy` without --yes and the destroy that follows, record the same changes.
 */
import { isMutating } from "../../src/launch/aws/clients";
import type { Change } from "../../src/launch/changes";
import { tempDir } from "../helpers";
import { representativeSteps } from "./converge";
import { apply, clientsFor, clusterYaml, destroy, registerAmi, writeSpec } from "./fixture";
import { startMoto, type Moto } from "./moto";

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
const dir = tempDir("aws-plan-matches");

/** What a change is, without the details only a real run can know (ids, instance counts). */
const list = (changes: Change[]) => changes.map((c) => `${c.action} ${c.kind} ${c.name}`);

test.each([
  ["a VPC of its own", () => ({})],
  ["the region's first three zones", () => ({ network: { apiAccess: ["203.0.113.0/24"] } })],
  ["one zone, SSH open", () => ({ network: { zones: ["eu-west-1a"], sshAccess: ["198.51.100.7/32"] } })],
])(
  "plan equals apply, and destroy's dry run equals destroy (%s)",
  async (_, overrides) => {
    await moto.reset();
    const clients = clientsFor(moto.endpoint);
    const ami = await registerAmi(clients, "kubebake-1");
    const spec = writeSpec(dir, clusterYaml({ image: { ami }, ...overrides() }));

    const plan = await apply(clients, spec, true);
    expect(plan.mutating).toEqual([]);
    const applied = await apply(clients, spec);
    expect(list(applied.changes)).toEqual(list(plan.changes));
    expect(applied.changes.length).toBeGreaterThan(30);

    const planned = await destroy(clients, "demo", true);
    expect(planned.mutating).toEqual([]);
    const destroyed = await destroy(clients);
    expect(list(destroyed.changes)).toEqual(list(planned.changes));
    expect(destroyed.changes.length).toBeGreaterThan(15);
  },
  120_000,
);

test("from every state a failed apply leaves (the PKI's 24 writes sampled), destroy's dry run equals destroy", async () => {
  await moto.reset();
  const reference = clientsFor(moto.endpoint);
  const spec = () => clusterYaml({ network: { zones: ["eu-west-1a"], apiAccess: ["203.0.113.0/24"] } });
  const ami = await registerAmi(reference, "kubebake-1");
  const steps = representativeSteps(
    (await apply(reference, writeSpec(dir, { ...spec(), image: { ami } }))).mutating,
  );
  expect(steps.length).toBeGreaterThan(30);
  for (const failAt of steps) {
    await moto.reset();
    let mutating = 0;
    const clients = clientsFor(moto.endpoint, (call) => {
      if (isMutating(call) && ++mutating === failAt) throw new Error(`injected failure before ${call}`);
    });
    const stepAmi = await registerAmi(clientsFor(moto.endpoint), "kubebake-1");
    const path = writeSpec(dir, { ...spec(), image: { ami: stepAmi } });
    await expect(apply(clients, path)).rejects.toThrow(/injected failure/);
    mutating = -Infinity; // no more failures
    const planned = await destroy(clients, "demo", true);
    const destroyed = await destroy(clients);
    expect({ failAt, changes: list(destroyed.changes) }).toEqual({ failAt, changes: list(planned.changes) });
  }
}, 600_000);
