/**
 * Rollout pacing, which moto cannot show (its new instances are InService at once): a strict fake of the
 * Auto Scaling and EC2 calls `rollOut` makes, where a replacement is Pending for some polls, then
 * InService but Unhealthy, then Healthy. Every poll is one tick of the fake's clock, so a wait that returns
 * early does not slow the clock down: it terminates the next batch while the group is short.
 */
import {
  DescribeAutoScalingGroupsCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import { loadClusterSpec } from "../../src/cluster/load";
import type { Role } from "../../src/discover/names";
import type { AwsClients } from "../../src/launch/aws/clients";
import type { Context } from "../../src/launch/aws/context";
import { resourceName, rolloutBatch, type Inputs } from "../../src/launch/aws/desired";
import { rollOut } from "../../src/launch/aws/groups";
import { ChangeRecorder } from "../../src/launch/changes";
import { silentProgress } from "../../src/util/progress";
import { tempDir } from "../helpers";
import { clusterYaml, writeSpec } from "./fixture";

const dir = tempDir("aws-rollout");
const OLD_AMI = "ami-00000000";
const NEW_AMI = "ami-11111111";

interface Instance {
  id: string;
  ami: string;
  lifecycle: "Pending" | "InService" | "Terminating";
  health: "Healthy" | "Unhealthy";
  /** Ticks until the next state (Pending → InService Unhealthy → Healthy; Terminating → gone). */
  ticks: number;
}

/** One Auto Scaling group and its EC2 instances, advancing one tick per read. */
class GroupModel {
  instances: Instance[] = [];
  private next = 0;
  /** The group's strength after each terminate call: healthy members that are not being replaced. */
  strengthAtTerminate: number[] = [];
  terminated: string[] = [];

  constructor(
    readonly name: string,
    readonly desired: number,
    readonly instanceType: string,
    readonly phases = { pending: 3, unhealthy: 2, terminating: 2 },
  ) {
    for (let i = 0; i < desired; i++) this.launch(OLD_AMI, true);
  }

  private launch(ami: string, ready = false) {
    const id = `i-${String(++this.next).padStart(17, "0")}`;
    this.instances.push(
      ready
        ? { id, ami, lifecycle: "InService", health: "Healthy", ticks: 0 }
        : { id, ami, lifecycle: "Pending", health: "Unhealthy", ticks: this.phases.pending },
    );
  }

  private tick() {
    for (const i of this.instances) {
      if (i.ticks === 0 || --i.ticks > 0) continue;
      if (i.lifecycle === "Pending") {
        i.lifecycle = "InService";
        i.ticks = this.phases.unhealthy;
      } else if (i.lifecycle === "InService") i.health = "Healthy";
    }
    const gone = this.instances.filter((i) => i.lifecycle === "Terminating" && i.ticks === 0);
    this.instances = this.instances.filter((i) => !gone.includes(i));
    // The group launches a replacement for each member that left while desired capacity stayed.
    const live = this.instances.filter((i) => i.lifecycle !== "Terminating").length;
    for (let n = live; n < this.desired; n++) this.launch(NEW_AMI);
  }

  strength(): number {
    return this.instances.filter((i) => i.lifecycle === "InService" && i.health === "Healthy").length;
  }

  describeGroup(names: string[] | undefined) {
    expect(names).toEqual([this.name]);
    this.tick();
    return {
      AutoScalingGroups: [
        {
          AutoScalingGroupName: this.name,
          DesiredCapacity: this.desired,
          MinSize: this.desired,
          MaxSize: this.desired,
          Instances: this.instances.map((i) => ({
            InstanceId: i.id,
            LifecycleState: i.lifecycle === "Terminating" ? "Terminating" : i.lifecycle,
            HealthStatus: i.health,
          })),
        },
      ],
    };
  }

  describeInstances(ids: string[] | undefined) {
    expect(ids?.length).toBeGreaterThan(0);
    const found = ids!.map((id) => {
      const i = this.instances.find((x) => x.id === id);
      if (!i)
        throw Object.assign(new Error(`The instance ID '${id}' does not exist`), {
          name: "InvalidInstanceID.NotFound",
        });
      return { InstanceId: i.id, ImageId: i.ami, InstanceType: this.instanceType };
    });
    return { Reservations: [{ Instances: found }] };
  }

  terminate(id: string | undefined, decrement: boolean | undefined) {
    expect(decrement).toBe(false);
    const i = this.instances.find((x) => x.id === id);
    if (!i || i.lifecycle !== "InService")
      throw Object.assign(new Error(`instance ${id} is not in service in ${this.name}`), {
        name: "ValidationError",
      });
    i.lifecycle = "Terminating";
    i.health = "Unhealthy";
    i.ticks = this.phases.terminating;
    this.terminated.push(i.id);
    this.strengthAtTerminate.push(this.strength());
  }
}

/** AwsClients with only the calls rollOut may make; any other call fails the test. */
function fakeClients(model: GroupModel): AwsClients {
  const calls: string[] = [];
  const unexpected = (command: object) => {
    throw new Error(`rollOut made an unexpected call: ${command.constructor.name}`);
  };
  const autoScaling = {
    send: async (command: object) => {
      calls.push(`AutoScaling:${command.constructor.name}`);
      if (command instanceof DescribeAutoScalingGroupsCommand)
        return model.describeGroup(command.input.AutoScalingGroupNames);
      if (command instanceof TerminateInstanceInAutoScalingGroupCommand)
        return model.terminate(command.input.InstanceId, command.input.ShouldDecrementDesiredCapacity);
      return unexpected(command);
    },
  };
  const ec2 = {
    send: async (command: object) => {
      calls.push(`EC2:${command.constructor.name}`);
      if (command instanceof DescribeInstancesCommand)
        return model.describeInstances(command.input.InstanceIds);
      return unexpected(command);
    },
  };
  return { autoScaling, ec2, calls } as unknown as AwsClients;
}

/** `masters` sizes the fake group only: the spec allows one master for now, rollOut is the same for three. */
function contextFor(role: Role, masters: number, minions: number, batchPercent = 25) {
  const spec = loadClusterSpec(
    writeSpec(
      dir,
      clusterYaml({
        image: { ami: NEW_AMI },
        rollout: { batchPercent },
        groups: {
          masters: { count: 1, instanceType: "t3.medium" },
          minions: { min: 1, max: 20, desired: minions, instanceType: "t3.large" },
        },
      }),
      `${role}-${masters}-${minions}-${batchPercent}.yaml`,
    ),
  ).spec;
  const size = role === "masters" ? masters : minions;
  const model = new GroupModel(resourceName(spec.name, role), size, spec.groups[role].instanceType);
  const rec = new ChangeRecorder(false, silentProgress);
  const ctx: Context = {
    clients: fakeClients(model),
    inputs: { spec, ami: NEW_AMI } as Inputs,
    rec,
    pollMs: 0,
    sleep: async () => {},
    clusterId: "test-cluster-id",
  };
  return { ctx, model, rec, batch: rolloutBatch(spec, role, size) };
}

describe("rollOut against a group whose replacements take time to become healthy", () => {
  test("masters: one at a time (even at batchPercent 100), each terminated only once the group is back to full strength and healthy", async () => {
    const { ctx, model, rec, batch } = contextFor("masters", 3, 1, 100);
    expect(batch).toBe(1);
    const old = model.instances.map((i) => i.id);
    await rollOut(ctx, "masters", true);
    expect(model.terminated).toEqual(old);
    // Before each terminate the group was whole: 3 healthy, so 2 just after it.
    expect(model.strengthAtTerminate).toEqual([2, 2, 2]);
    expect(rec.changes.map((c) => c.detail)).toEqual([
      `3 outdated instance(s), 1 now: ${old[0]}`,
      `2 outdated instance(s), 1 now: ${old[1]}`,
      `1 outdated instance(s), 1 now: ${old[2]}`,
    ]);
    // rollOut returned after the last replacement was healthy: the group is whole on the new image.
    expect(model.strength()).toBe(3);
    expect(model.instances.filter((i) => i.lifecycle !== "Terminating").map((i) => i.ami)).toEqual([
      NEW_AMI,
      NEW_AMI,
      NEW_AMI,
    ]);
  });

  test("one master: rollOut returns only once its replacement is in service and healthy", async () => {
    const { ctx, model } = contextFor("masters", 1, 1);
    const [old] = model.instances.map((i) => i.id);
    await rollOut(ctx, "masters", true);
    expect(model.terminated).toEqual([old]);
    expect(model.strength()).toBe(1);
    expect(model.instances.map((i) => [i.ami, i.lifecycle, i.health])).toEqual([
      [NEW_AMI, "InService", "Healthy"],
    ]);
  });

  test("minions: batches of the rollout share, the next batch only once the group is whole and healthy", async () => {
    const { ctx, model, batch } = contextFor("minions", 1, 8);
    expect(batch).toBe(2); // 25 % of 8
    await rollOut(ctx, "minions", true);
    expect(model.terminated).toHaveLength(8);
    // Within a batch the strength drops by one per terminate; a batch starts only at full strength.
    expect(model.strengthAtTerminate).toEqual([7, 6, 7, 6, 7, 6, 7, 6]);
    expect(model.strength()).toBe(8);
  });

  test("a group already on the image is left alone; a group that did not exist before is not read", async () => {
    const { ctx, model } = contextFor("minions", 1, 4);
    for (const i of model.instances) i.ami = NEW_AMI;
    await rollOut(ctx, "minions", true);
    expect(model.terminated).toEqual([]);
    const fresh = contextFor("minions", 1, 4);
    await rollOut(fresh.ctx, "minions", false);
    expect(fresh.ctx.clients.calls).toEqual([]);
  });
});
