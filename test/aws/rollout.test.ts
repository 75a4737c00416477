/**
 * Rollout pacing, which moto cannot show (its new instances are InService at once, and it holds none in
 * Pending:Wait for a launch hook): a strict fake of the Auto Scaling and EC2 calls `rollOut` makes, where a
 * replacement is Pending for some polls, then, in a group with a launch hook, Pending:Wait until its node
 * completes the hook (abandoned after the heartbeat timeout), then InService but Unhealthy, then Healthy.
 * Every poll is one tick of the fake's clock, so a wait that returns early does not slow the clock down:
 * it terminates the next batch while the group is short.
 */
import {
  CompleteLifecycleActionCommand,
  DescribeAutoScalingGroupsCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import { loadCloudSpec } from "../../src/cluster/load";
import type { Role } from "../../src/discover/names";
import type { AwsClients } from "../../src/launch/aws/clients";
import type { Context } from "../../src/launch/aws/context";
import { LAUNCH_HOOK_NAME, resourceName, rolloutBatch, type Inputs } from "../../src/launch/aws/desired";
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
  lifecycle: "Pending" | "Pending:Wait" | "Pending:Proceed" | "InService" | "Terminating";
  health: "Healthy" | "Unhealthy";
  /** Ticks until the next state (Pending → [Pending:Wait →] InService Unhealthy → Healthy; Terminating → gone). */
  ticks: number;
  /** Ticks spent in Pending:Wait. */
  waited: number;
}

/** A launch hook on the group: how long an instance may wait, and when its node completes the hook. */
interface HookModel {
  name: string;
  /** Ticks in Pending:Wait before Auto Scaling abandons the instance (DefaultResult ABANDON). */
  heartbeat: number;
  /** Ticks in Pending:Wait before the instance's node completes the hook (Infinity: never). */
  votesAfter: number;
}

/** One Auto Scaling group and its EC2 instances, advancing one tick per read. */
class GroupModel {
  instances: Instance[] = [];
  private next = 0;
  /** The group's strength after each terminate call: healthy members that are not being replaced. */
  strengthAtTerminate: number[] = [];
  terminated: string[] = [];
  /** What happened, in order: `terminate|launch|wait|complete|abandon|in-service <id>`. */
  events: string[] = [];

  constructor(
    readonly name: string,
    public desired: number,
    readonly instanceType: string,
    readonly hook?: HookModel,
    readonly phases = { pending: 3, unhealthy: 2, terminating: 2 },
  ) {
    for (let i = 0; i < desired; i++) this.launch(OLD_AMI, true);
  }

  launch(ami: string, ready = false): Instance {
    const id = `i-${String(++this.next).padStart(17, "0")}`;
    const instance: Instance = ready
      ? { id, ami, lifecycle: "InService", health: "Healthy", ticks: 0, waited: 0 }
      : { id, ami, lifecycle: "Pending", health: "Unhealthy", ticks: this.phases.pending, waited: 0 };
    this.instances.push(instance);
    if (!ready) this.events.push(`launch ${id}`);
    return instance;
  }

  private tick() {
    for (const i of this.instances) {
      if (i.lifecycle === "Pending:Wait") {
        i.waited++;
        // The node completes the hook once it votes; a node that never does is abandoned.
        if (i.waited >= this.hook!.votesAfter)
          this.completeLifecycleAction(this.name, this.hook!.name, i.id, "CONTINUE");
        else if (i.waited >= this.hook!.heartbeat) this.leave(i, "abandon");
        continue;
      }
      if (i.lifecycle === "Pending:Proceed") {
        i.lifecycle = "InService";
        i.ticks = this.phases.unhealthy;
        this.events.push(`in-service ${i.id}`);
        continue;
      }
      if (i.ticks === 0 || --i.ticks > 0) continue;
      if (i.lifecycle === "Pending" && this.hook) {
        i.lifecycle = "Pending:Wait";
        this.events.push(`wait ${i.id}`);
      } else if (i.lifecycle === "Pending") {
        i.lifecycle = "InService";
        i.ticks = this.phases.unhealthy;
        this.events.push(`in-service ${i.id}`);
      } else if (i.lifecycle === "InService") i.health = "Healthy";
    }
    const gone = this.instances.filter((i) => i.lifecycle === "Terminating" && i.ticks === 0);
    this.instances = this.instances.filter((i) => !gone.includes(i));
    // The group launches a replacement for each member that left while desired capacity stayed.
    const live = this.instances.filter((i) => i.lifecycle !== "Terminating").length;
    for (let n = live; n < this.desired; n++) this.launch(NEW_AMI);
  }

  private leave(i: Instance, event: "terminate" | "abandon") {
    i.lifecycle = "Terminating";
    i.health = "Unhealthy";
    i.ticks = this.phases.terminating;
    this.events.push(`${event} ${i.id}`);
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
            LifecycleState: i.lifecycle,
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
    this.leave(i, "terminate");
    this.terminated.push(i.id);
    this.strengthAtTerminate.push(this.strength());
  }

  /** As Auto Scaling answers it: only for an instance of this group waiting on this hook. */
  completeLifecycleAction(group?: string, hook?: string, id?: string, result?: string) {
    const i = this.instances.find((x) => x.id === id);
    if (group !== this.name || !this.hook || hook !== this.hook.name || i?.lifecycle !== "Pending:Wait")
      throw Object.assign(new Error(`No active Lifecycle Action found with instance ID ${id}`), {
        name: "ValidationError",
      });
    if (result !== "CONTINUE" && result !== "ABANDON")
      throw Object.assign(new Error(`LifecycleActionResult ${result}`), { name: "ValidationError" });
    this.events.push(`complete ${i.id}`);
    if (result === "ABANDON") this.leave(i, "abandon");
    else i.lifecycle = "Pending:Proceed";
    return {};
  }

  /** Ids launched (as replacements) before event `index`. */
  launchedBefore(index: number): string[] {
    return this.events.slice(0, index).flatMap((e) => (e.startsWith("launch ") ? [e.slice(7)] : []));
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
      // The nodes' call (the tests make it as a node would); rollOut never completes a hook itself.
      if (command instanceof CompleteLifecycleActionCommand) {
        const { AutoScalingGroupName, LifecycleHookName, InstanceId, LifecycleActionResult } = command.input;
        return model.completeLifecycleAction(
          AutoScalingGroupName,
          LifecycleHookName,
          InstanceId,
          LifecycleActionResult,
        );
      }
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

/**
 * `masters` sizes the fake group (the spec's count is not read by rollOut).
 * The masters group has the launch hook, as apply makes it; its nodes vote after `votesAfter` ticks.
 */
function contextFor(
  role: Role,
  masters: number,
  minions: number,
  batchPercent = 25,
  hook: Partial<HookModel> = {},
  timeoutSeconds = 900,
) {
  const spec = loadCloudSpec(
    writeSpec(
      dir,
      clusterYaml({
        image: { ami: NEW_AMI },
        rollout: { batchPercent, timeoutSeconds },
        groups: {
          masters: { count: 1, instanceType: "t3.medium" },
          minions: { min: 1, max: 20, desired: minions, instanceType: "t3.large" },
        },
      }),
      `${role}-${masters}-${minions}-${batchPercent}-${timeoutSeconds}.yaml`,
    ),
    "aws",
  );
  const size = role === "masters" ? masters : minions;
  const model = new GroupModel(
    resourceName(spec.name, role),
    size,
    spec.groups[role].instanceType,
    role === "masters" ? { name: LAUNCH_HOOK_NAME, heartbeat: 50, votesAfter: 4, ...hook } : undefined,
  );
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

describe("the launch hook gate (masters)", () => {
  test("the fake: an instance launched into a group with a launch hook stays Pending:Wait until CompleteLifecycleAction names it", async () => {
    const { ctx, model } = contextFor("masters", 1, 1, 25, { votesAfter: Infinity, heartbeat: Infinity });
    model.desired = 2; // scale out: one launch
    const read = async () =>
      (
        (await ctx.clients.autoScaling.send(
          new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [model.name] }),
        )) as { AutoScalingGroups: { Instances: { InstanceId: string; LifecycleState: string }[] }[] }
      ).AutoScalingGroups[0]!.Instances;
    for (let i = 0; i < 100; i++) await read();
    const waiting = (await read()).find((i) => i.LifecycleState !== "InService")!;
    expect(waiting.LifecycleState).toBe("Pending:Wait");
    const complete = (input: Partial<CompleteLifecycleActionCommand["input"]>) =>
      ctx.clients.autoScaling.send(
        new CompleteLifecycleActionCommand({
          AutoScalingGroupName: model.name,
          LifecycleHookName: LAUNCH_HOOK_NAME,
          InstanceId: waiting.InstanceId,
          LifecycleActionResult: "CONTINUE",
          ...input,
        }),
      );
    // Strict as Auto Scaling: another hook, group or instance has no lifecycle action to complete.
    await expect(complete({ LifecycleHookName: "other" })).rejects.toThrow(/No active Lifecycle Action/);
    await expect(complete({ AutoScalingGroupName: "other" })).rejects.toThrow(/No active Lifecycle Action/);
    await expect(complete({ InstanceId: model.instances[0]!.id })).rejects.toThrow(
      /No active Lifecycle Action/,
    );
    expect((await read()).find((i) => i.InstanceId === waiting.InstanceId)!.LifecycleState).toBe(
      "Pending:Wait",
    );
    await complete({});
    expect((await read()).find((i) => i.InstanceId === waiting.InstanceId)!.LifecycleState).toBe("InService");
    await expect(complete({})).rejects.toThrow(/No active Lifecycle Action/);
  });

  test("three masters: the next old master is terminated only after the previous replacement completed the hook and is healthy", async () => {
    const { ctx, model } = contextFor("masters", 3, 1, 100, { votesAfter: 6 });
    const old = model.instances.map((i) => i.id);
    await rollOut(ctx, "masters", true);
    expect(model.terminated).toEqual(old);
    const terminations = model.events.flatMap((e, index) => (e.startsWith("terminate ") ? [index] : []));
    expect(terminations).toHaveLength(3);
    for (const at of terminations.slice(1)) {
      const before = model.events.slice(0, at);
      // Every replacement launched so far voted (completed the hook) before this termination.
      for (const id of model.launchedBefore(at)) expect(before).toContain(`complete ${id}`);
    }
    const [firstReplacement] = model.launchedBefore(terminations[1]!);
    const waited = model.events.indexOf(`wait ${firstReplacement}`);
    const voted = model.events.indexOf(`complete ${firstReplacement}`);
    expect(0 < waited && waited < voted && voted < terminations[1]!).toBe(true);
    // rollOut only waits: completing the hook is the new master's own call.
    expect(ctx.clients.calls.filter((c) => c.includes("CompleteLifecycleAction"))).toEqual([]);
    expect(model.strength()).toBe(3);
    expect(model.instances.map((i) => i.ami)).toEqual([NEW_AMI, NEW_AMI, NEW_AMI]);
  });

  test("a replacement that never votes is abandoned and relaunched, and no second master is terminated: the rollout times out", async () => {
    const { ctx, model } = contextFor("masters", 3, 1, 100, { votesAfter: Infinity, heartbeat: 5 }, 1);
    const old = model.instances.map((i) => i.id);
    await expect(rollOut(ctx, "masters", true)).rejects.toThrow(
      /timed out after 1 s waiting for kubebake-demo-masters/,
    );
    expect(model.terminated).toEqual([old[0]]);
    expect(model.events.filter((e) => e.startsWith("abandon ")).length).toBeGreaterThan(1);
    expect(model.events.filter((e) => e.startsWith("complete "))).toEqual([]);
    // The two old masters still serve; the group holds no member that did not vote.
    expect(model.instances.filter((i) => i.lifecycle === "InService").map((i) => i.id)).toEqual(old.slice(1));
  });

  test("a rollout resumed while an earlier replacement still waits on the hook terminates nothing until it voted", async () => {
    const { ctx, model } = contextFor("masters", 3, 1, 100, { votesAfter: 8 });
    // An earlier apply replaced the first master and stopped: its replacement is still Pending:Wait.
    model.instances.shift();
    const pending = model.launch(NEW_AMI);
    pending.lifecycle = "Pending:Wait";
    const old = model.instances.filter((i) => i.ami === OLD_AMI).map((i) => i.id);
    await rollOut(ctx, "masters", true);
    expect(model.terminated).toEqual(old);
    const firstTermination = model.events.findIndex((e) => e.startsWith("terminate "));
    expect(model.events.indexOf(`complete ${pending.id}`)).toBeLessThan(firstTermination);
    expect(model.strengthAtTerminate).toEqual([2, 2]);
  });
});
