/**
 * The discovery function's Auto Scaling rule, evaluated by an EventBridge pattern matcher (moto's, the
 * Python that runs moto_server) against events shaped as AWS documents them: a master entering
 * Pending:Wait at the launch hook invokes the function, as launches and terminations do; another
 * cluster's groups and other sources do not.
 */
import { spawnSync } from "node:child_process";
import { autoScalingEventPattern, LAUNCH_HOOK_NAME } from "../../src/launch/aws/desired";

/** moto's EventPattern.matches_event for each event, in one Python process. */
function matches(pattern: object, events: object[]): boolean[] {
  const script = [
    "import json, sys",
    "from moto.events.models import EventPattern",
    "given = json.load(sys.stdin)",
    "pattern = EventPattern.load(json.dumps(given['pattern']))",
    "print(json.dumps([pattern.matches_event(e) for e in given['events']]))",
  ].join("\n");
  const run = spawnSync("python3", ["-c", script], {
    input: JSON.stringify({ pattern, events }),
    encoding: "utf8",
  });
  if (run.status !== 0) throw new Error(`python3 (moto's matcher) failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

const REGION = "eu-west-1";

/** AWS's sample "EC2 Instance-launch Lifecycle Action" event (the Auto Scaling event reference). */
const launchLifecycleAction = (group: string) => ({
  version: "0",
  id: "12345678-1234-1234-1234-123456789012",
  "detail-type": "EC2 Instance-launch Lifecycle Action",
  source: "aws.autoscaling",
  account: "123456789012",
  time: "2026-11-23T12:00:00Z",
  region: REGION,
  resources: [
    `arn:aws:autoscaling:${REGION}:123456789012:autoScalingGroup:1a2b:autoScalingGroupName/${group}`,
  ],
  detail: {
    LifecycleActionToken: "87654321-4321-4321-4321-210987654321",
    AutoScalingGroupName: group,
    LifecycleHookName: LAUNCH_HOOK_NAME,
    EC2InstanceId: "i-1234567890abcdef0",
    LifecycleTransition: "autoscaling:EC2_INSTANCE_LAUNCHING",
    Origin: "EC2",
    Destination: "AutoScalingGroup",
  },
});

const activity = (detailType: string, group: string, source = "aws.autoscaling") => ({
  version: "0",
  id: "7bf73129-1428-4cd3-a780-95db273d1602",
  "detail-type": detailType,
  source,
  account: "123456789012",
  time: "2026-11-23T12:00:00Z",
  region: REGION,
  resources: [],
  detail: { StatusCode: "InProgress", AutoScalingGroupName: group, EC2InstanceId: "i-1234567890abcdef0" },
});

test("the rule fires on a master entering Pending:Wait, on launches and terminations, only for this cluster's groups", () => {
  const events = {
    "lifecycle action, masters": launchLifecycleAction("kubebake-demo-masters"),
    "launch successful, masters": activity("EC2 Instance Launch Successful", "kubebake-demo-masters"),
    "terminate successful, minions": activity("EC2 Instance Terminate Successful", "kubebake-demo-minions"),
    "launch unsuccessful, minions": activity("EC2 Instance Launch Unsuccessful", "kubebake-demo-minions"),
    "lifecycle action, another cluster's masters": launchLifecycleAction("kubebake-other-masters"),
    "lifecycle action, a group named like a prefix": launchLifecycleAction("kubebake-demo-masters-old"),
    "launch successful, another cluster": activity(
      "EC2 Instance Launch Successful",
      "kubebake-other-minions",
    ),
    "another source": activity("EC2 Instance Launch Successful", "kubebake-demo-masters", "aws.ec2"),
  };
  const answers = matches(autoScalingEventPattern("demo"), Object.values(events));
  expect(Object.fromEntries(Object.keys(events).map((name, i) => [name, answers[i]]))).toEqual({
    "lifecycle action, masters": true,
    "launch successful, masters": true,
    "terminate successful, minions": true,
    "launch unsuccessful, minions": true,
    "lifecycle action, another cluster's masters": false,
    "lifecycle action, a group named like a prefix": false,
    "launch successful, another cluster": false,
    "another source": false,
  });
});

test("the matcher is not lenient: a detail-type filter without the lifecycle action would miss it", () => {
  const launchesOnly = {
    ...autoScalingEventPattern("demo"),
    "detail-type": ["EC2 Instance Launch Successful", "EC2 Instance Terminate Successful"],
  };
  expect(matches(launchesOnly, [launchLifecycleAction("kubebake-demo-masters")])).toEqual([false]);
});
