"""moto_server with repairs, for kubebake's tests (test/aws/moto.ts and bench/discovery.mjs start it).

1. Launch template UserData. moto 5.2.1 stores the UserData of CreateLaunchTemplateVersion as a plain
   string (CreateLaunchTemplate decodes it properly), and an Auto Scaling group that launches from such a
   version then fails an assertion with HTTP 500. AWS has no such limit, so the harness wraps the string
   the way moto itself does.

2. Route 53 change batches (a moto bug). moto checks a CREATE that equals any earlier CREATE in the zone's
   journal against the records as they were BEFORE the batch, and with a listing that starts at the name
   (so any record sorting after it counts too). The compare-and-swap `DELETE B + CREATE A`, after the
   record went A -> B, therefore fails with "Tried to create resource record set ... but it already
   exists", although Route 53 applies a batch's changes in order and accepts it; so does `DELETE M +
   CREATE M`. moto's DELETE, on the other hand, does not compare values with the current record (it only
   looks for any matching CREATE in the journal). The repair validates each batch in order against the
   zone's current records with Route 53's rules and messages (DELETE must match the current TTL and
   values exactly, CREATE must not find the name and type, a CNAME shares its name with nothing), then
   lets moto apply it with its journal check switched off for that call.

3. Lambda LoggingConfig. moto ignores LoggingConfig in CreateFunction and UpdateFunctionConfiguration and
   never returns it; Lambda stores it and GetFunction returns it (default LogFormat "Text", LogGroup
   "/aws/lambda/<name>"). The repair stores and returns it, so the deployment's idempotency is tested.

4. Lambda Invoke (not a bug: moto runs functions in Docker, which these machines lack). A function whose
   runtime is nodejs* is run here instead: its zip unpacked into a temporary folder, its handler called
   by `node` with the function's environment, AWS_ENDPOINT_URL pointing back at this moto_server, the
   repository's node_modules for the `@aws-sdk/*` packages that Lambda's runtime provides, and a context
   whose getRemainingTimeInMillis counts down from the function's Timeout. The handler's result is the
   payload; a thrown error is a FunctionError with Lambda's {errorType, errorMessage} payload.

5. Auto Scaling lifecycle hooks given at creation. moto ignores CreateAutoScalingGroup's
   LifecycleHookSpecificationList (AWS creates those hooks with the group, so its first instances already
   wait), and keeps a group's hooks after DeleteAutoScalingGroup (AWS deletes them with the group). The
   repair creates and deletes them as AWS does. moto still never holds an instance in Pending:Wait:
   test/aws/rollout.test.ts models that.

6. S3 tags given at creation and bucket owners. moto ignores CreateBucketConfiguration's Tags (AWS tags
   the bucket as it creates it) and ExpectedBucketOwner on HeadBucket (AWS answers 403 when the bucket
   belongs to another account). The repair tags the bucket and answers 403.

7. S3 bucket policies on object requests. moto evaluates a bucket policy for object requests, but skips
   conditions of any operator but StringEquals (so a `Bool` condition always matches) and treats a
   statement whose condition does not match as an explicit Deny. A policy that denies requests without
   TLS (`aws:SecureTransport` false) therefore denies every PutObject and DeleteObjects. AWS evaluates
   `Bool` and ignores a statement whose condition does not match; the repair does both, and evaluates
   requests as coming over TLS: the SDK talks https to AWS, and http only to this local endpoint.

8. A root volume mapping without size or snapshot. EC2 takes the AMI's snapshot (and its size) for a
   block device mapping that names the AMI's root device with only Ebs.Encrypted/KmsKeyId, which is how
   a launch template encrypts the root volume of an unencrypted AMI. moto requires a size or snapshot
   and fails the launch (MissingParameter size/snapshot); the repair takes the AMI's root snapshot, or
   moto's own default root size (8 GiB) when the AMI has none.
"""
import sys

from moto.core.types import Base64EncodedString
from moto.ec2.models import launch_templates

_original = launch_templates.LaunchTemplateVersion.user_data.fget


def _user_data(self):
    value = self.data.get("UserData")
    if isinstance(value, str):
        self.data["UserData"] = Base64EncodedString(value)
    return _original(self)


launch_templates.LaunchTemplateVersion.user_data = property(_user_data)


# --- 2. Route 53 change batches -------------------------------------------------------------------
from moto.route53 import models as route53_models  # noqa: E402
from moto.route53.exceptions import Route53ClientError  # noqa: E402


def _dot(name):
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _values(record_set):
    values = []
    for entry in record_set.get("ResourceRecords") or []:
        values.append(entry["Value"] if isinstance(entry, dict) else entry)
    return sorted(values)


def _content(ttl, values, alias):
    return (None if alias else str(ttl), values, (alias or {}).get("DNSName"))


def _batch_error(message):
    return Route53ClientError("InvalidChangeBatch", f"[{message}]")


def _validate(zone, changes):
    state = {}
    for rrset in zone.rrsets:
        key = (_dot(rrset.name), rrset.type, rrset.set_identifier)
        values = sorted(r["Value"] if isinstance(r, dict) else r for r in rrset.records or [])
        state[key] = _content(rrset.ttl, values, rrset.alias_target)
    for change in changes:
        record_set = change["ResourceRecordSet"]
        name, rtype = _dot(record_set["Name"]), record_set["Type"]
        key = (name, rtype, record_set.get("SetIdentifier"))
        content = _content(record_set.get("TTL"), _values(record_set), record_set.get("AliasTarget"))
        shown = f"[name='{name}', type='{rtype}'"
        shown += f", set-identifier='{key[2]}']" if key[2] is not None else "]"
        if change["Action"] == "DELETE":
            if key not in state:
                raise _batch_error(f"Tried to delete resource record set {shown} but it was not found")
            if state[key] != content:
                raise _batch_error(
                    f"Tried to delete resource record set {shown} but the values provided do not match the current values"
                )
            del state[key]
            continue
        others = [k for k in state if k[0] == name and k[1] != rtype]
        cname = [k for k in others if "CNAME" in (k[1], rtype)]
        if cname:
            raise _batch_error(
                f"RRSet of type {rtype} with DNS name {name} is not permitted because a conflicting RRSet of type {cname[0][1]} with the same DNS name already exists in zone {zone.name}"
            )
        if change["Action"] == "CREATE" and key in state:
            raise _batch_error(f"Tried to create resource record set {shown} but it already exists")
        state[key] = content


class _ValidatedJournal(route53_models.ChangeList):
    """Stands in for the zone's journal while moto applies a batch that _validate accepted."""

    def __contains__(self, item):
        return False

    def has_insert_or_update(self, new_rr_set):
        return True


_change = route53_models.Route53Backend.change_resource_record_sets


def _strict_change(self, zoneid, change_list):
    zone = self.get_hosted_zone(zoneid)
    _validate(zone, change_list)
    journal = zone.rr_changes
    zone.rr_changes = _ValidatedJournal()
    try:
        _change(self, zoneid, change_list)
    finally:
        applied = list(zone.rr_changes)
        zone.rr_changes = journal
        for entry in applied:
            journal.append(entry)


route53_models.Route53Backend.change_resource_record_sets = _strict_change


# --- 3. Lambda LoggingConfig ----------------------------------------------------------------------
from moto.awslambda import models as lambda_models  # noqa: E402

_init = lambda_models.LambdaFunction.__init__
_configuration = lambda_models.LambdaFunction.get_configuration
_update = lambda_models.LambdaFunction.update_configuration


def _logging_init(self, account_id, spec, *args, **kwargs):
    _init(self, account_id, spec, *args, **kwargs)
    self.logging_config = {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{self.function_name}"}
    self.logging_config.update(spec.get("LoggingConfig") or {})


def _logging_configuration(self, *args, **kwargs):
    config = _configuration(self, *args, **kwargs)
    config["LoggingConfig"] = dict(getattr(self, "logging_config", {}))
    return config


def _logging_update(self, config_updates):
    if "LoggingConfig" in config_updates:
        self.logging_config.update(config_updates["LoggingConfig"] or {})
    return _update(self, config_updates)


lambda_models.LambdaFunction.__init__ = _logging_init
lambda_models.LambdaFunction.get_configuration = _logging_configuration
lambda_models.LambdaFunction.update_configuration = _logging_update

# --- 4. Lambda Invoke of Node functions without Docker ----------------------------------------------
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import zipfile  # noqa: E402

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PORT = sys.argv[sys.argv.index("-p") + 1] if "-p" in sys.argv else "5000"
_RUNNER = r"""
const [dir, handler, event, timeoutSeconds] = process.argv.slice(1);
const [file, name] = handler.split(".");
const started = Date.now();
const context = { getRemainingTimeInMillis: () => Number(timeoutSeconds) * 1000 - (Date.now() - started) };
const answer = (line, failed) => { process.stdout.write("\n" + line + "\n"); if (failed) process.exitCode = 1; };
Promise.resolve()
  .then(() => require(dir + "/" + file)[name](JSON.parse(event), context))
  .then(
    (result) => answer(JSON.stringify(result === undefined ? null : result), false),
    (error) => answer(JSON.stringify({ errorType: error && error.name, errorMessage: error && error.message }), true),
  );
"""
_invoke = lambda_models.LambdaFunction._invoke_lambda


def _invoke_node(self, event=None):
    if not str(self.run_time).startswith("nodejs") or "ZipFile" not in self.code:
        return _invoke(self, event)
    env = dict(os.environ)
    env.update({k: str(v) for k, v in (self.environment_vars or {}).items()})
    env.update(
        {
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_PORT}",
            "AWS_ACCESS_KEY_ID": "role-account-id",
            "AWS_SECRET_ACCESS_KEY": "role-secret-key",
            "AWS_SESSION_TOKEN": "session-token",
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED": "true",
            "NODE_PATH": os.path.join(_REPO, "node_modules"),
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        zipfile.ZipFile(io.BytesIO(self.code_bytes)).extractall(folder)
        payload = json.dumps(event if event is not None else {})
        try:
            run = subprocess.run(
                ["node", "-e", _RUNNER, folder, self.handler, payload, str(self.timeout)],
                env=env,
                capture_output=True,
                text=True,
                timeout=int(self.timeout) + 5,
            )
        except subprocess.TimeoutExpired:
            body = {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out"}
            return json.dumps(body), True, ""
    lines = run.stdout.rstrip("\n").splitlines()
    result = lines[-1] if lines else json.dumps({"errorType": "Runtime.ExitError", "errorMessage": run.stderr[-500:]})
    logs = "\n".join(lines[:-1]) + run.stderr
    self.logs_backend.ensure_log_group(self.logs_group_name)
    self.save_logs(logs)
    return result, run.returncode != 0, logs


lambda_models.LambdaFunction._invoke_lambda = _invoke_node

# --- 5. Auto Scaling lifecycle hooks given at creation ---------------------------------------------
from moto.autoscaling import responses as autoscaling_responses  # noqa: E402

_create_group = autoscaling_responses.AutoScalingResponse.create_auto_scaling_group
_delete_group = autoscaling_responses.AutoScalingResponse.delete_auto_scaling_group


def _create_group_with_hooks(self):
    result = _create_group(self)
    group = self._get_param("AutoScalingGroupName")
    for hook in self._get_params().get("LifecycleHookSpecificationList") or []:
        timeout = hook.get("HeartbeatTimeout")
        self.autoscaling_backend.create_lifecycle_hook(
            name=hook["LifecycleHookName"],
            as_name=group,
            transition=hook["LifecycleTransition"],
            timeout=int(timeout) if timeout is not None else None,
            result=hook.get("DefaultResult"),
        )
    return result


def _delete_group_and_hooks(self):
    result = _delete_group(self)
    group = self._get_param("AutoScalingGroupName")
    hooks = self.autoscaling_backend.lifecycle_hooks
    for key in [k for k, hook in hooks.items() if hook.auto_scaling_group_name == group]:
        del hooks[key]
    return result


autoscaling_responses.AutoScalingResponse.create_auto_scaling_group = _create_group_with_hooks
autoscaling_responses.AutoScalingResponse.delete_auto_scaling_group = _delete_group_and_hooks

# --- 6. S3 tags at creation, ExpectedBucketOwner on HeadBucket --------------------------------------
import xmltodict  # noqa: E402
from moto.s3 import models as s3_models  # noqa: E402
from moto.s3 import responses as s3_responses  # noqa: E402

_bucket_put = s3_responses.S3Response._bucket_response_put
_head_bucket = s3_responses.S3Response.head_bucket


def _bucket_put_with_tags(self, request, bucket_name, querystring):
    result = _bucket_put(self, request, bucket_name, querystring)
    if self.data.get("Action") == "CreateBucket" and self.body:
        config = xmltodict.parse(self.body).get("CreateBucketConfiguration") or {}
        tags = (config.get("Tags") or {}).get("Tag") or []
        tags = tags if isinstance(tags, list) else [tags]
        if tags:
            self.backend.put_bucket_tagging(bucket_name, {t["Key"]: t.get("Value") or "" for t in tags})
    return result


def _head_bucket_of_owner(self):
    expected = self.headers.get("x-amz-expected-bucket-owner")
    if expected:
        try:
            bucket = self.backend.get_bucket(self.bucket_name)
        except Exception:  # absent: the original answers 404
            bucket = None
        if bucket is not None and bucket.account_id != expected:
            return 403, {}, ""
    return _head_bucket(self)


s3_responses.S3Response._bucket_response_put = _bucket_put_with_tags
s3_responses.S3Response.head_bucket = _head_bucket_of_owner

# --- 7. S3 bucket policies: conditions that do not match, and TLS -----------------------------------
from moto.iam import access_control, policy_conditions  # noqa: E402


def _bool_operation(expected, actual):
    wanted = expected if isinstance(expected, list) else [expected]
    return str(actual).lower() in [str(w).lower() for w in wanted]


policy_conditions.CONDITION_OPERATIONS["Bool"] = _bool_operation

_statement_permitted = access_control.IAMPolicyStatement.is_action_permitted


def _aws_statement_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
    if self._statement.get("Condition") and not self._check_conditions(incoming_condition_values):
        return access_control.PermissionResult.NEUTRAL
    return _statement_permitted(self, action, resource, principal, incoming_condition_values)


def _bucket_permission_over_tls(self, action, resource):
    if self.policy is None:
        return access_control.PermissionResult.NEUTRAL
    policy = access_control.IAMPolicy(self.policy.decode())
    return policy.is_action_permitted(action, resource, incoming_condition_values={"aws:SecureTransport": "true"})


access_control.IAMPolicyStatement.is_action_permitted = _aws_statement_permitted
s3_models.FakeBucket.get_permission = _bucket_permission_over_tls

# --- 8. Root volume mappings that take the AMI's snapshot ---------------------------------------------
from moto.ec2.models import instances as ec2_instances  # noqa: E402

_add_block_device = ec2_instances.Instance.add_block_device


def _add_block_device_from_ami(self, size, device_path, snapshot_id, *args, **kwargs):
    if size is None and snapshot_id is None and device_path == self.root_device_name:
        amis = self.ec2_backend.describe_images(filters={"image-id": self.image_id})
        snapshot = getattr(amis[0], "ebs_snapshot", None) if amis else None
        if snapshot is not None:
            snapshot_id = snapshot.id
        else:
            size = 8
    return _add_block_device(self, size, device_path, snapshot_id, *args, **kwargs)


ec2_instances.Instance.add_block_device = _add_block_device_from_ami

from moto.server import main  # noqa: E402  (after the repairs)

sys.exit(main(sys.argv[1:]))
