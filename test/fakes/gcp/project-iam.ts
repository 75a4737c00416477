import { createHash } from "node:crypto";
import { bytesEtag, maskPaths } from "./common";
import { rpcError, type FakeResponse, type GoogleApiFake } from "./fake";
import type { IamState } from "./iam";

/**
 * IAM policies as Google keeps them, for any resource (a project, a secret), and Resource Manager v3's
 * project getIamPolicy/setIamPolicy on top. What the model holds clients to:
 * - every set changes the etag; a set carrying a stale etag answers 409 ABORTED (a lost read-modify-write
 *   race), one without an etag overwrites blindly, as GCP allows;
 * - a conditional binding needs `version: 3`, and so does any set over a policy that has conditions;
 *   a read asking for less than 3 gets version 1 with those bindings' roles suffixed `_withcond_HASH`
 *   and their conditions left out (GCP's documented downgrade), which a set refuses back;
 * - a member must have a known form; `serviceAccount:E` of the policy's own project
 *   (`…@PROJECT.iam.gserviceaccount.com`) must exist; a role must be `roles/…` or an existing, not deleted
 *   `projects/PROJECT/roles/ID` (members a deleted role already had may stay: GCP keeps such bindings);
 * - bindings come back merged by role and condition, without empty ones.
 */
export interface ExprJson {
  expression?: string;
  title?: string;
  description?: string;
  location?: string;
}

export interface BindingJson {
  role: string;
  members: string[];
  condition?: ExprJson;
}

export interface PolicyJson {
  version?: number;
  etag?: string;
  bindings?: BindingJson[];
  auditConfigs?: unknown[];
}

const BASIC_ROLES = ["roles/owner", "roles/editor", "roles/viewer"];
const EMAIL = "[^@\\s:]+@[^@\\s:]+\\.[a-z]+";
const MEMBER = new RegExp(
  `^(?:(?:user|group|serviceAccount):${EMAIL}` +
    `|deleted:(?:user|group|serviceAccount):${EMAIL}\\?uid=\\d+` +
    `|domain:[a-z0-9.-]+\\.[a-z]+|allUsers|allAuthenticatedUsers|principal(?:Set)?://\\S+)$`,
);

const conditionKey = (condition?: ExprJson) =>
  condition ? JSON.stringify([condition.expression, condition.title, condition.description]) : "";
const bindingKey = (binding: BindingJson) => `${binding.role}\n${conditionKey(binding.condition)}`;

/** One resource's policy. `holders(role)` and `bindings` are for tests to look at. */
export class IamPolicy {
  bindings: BindingJson[] = [];
  auditConfigs?: unknown[];

  /** A new resource's policy has GCP's etag of an empty policy. */
  constructor(public etag = "ACAB") {}

  get conditional(): boolean {
    return this.bindings.some((binding) => binding.condition);
  }

  /** The members holding `role` (with or without a condition). */
  holders(role: string): string[] {
    return this.bindings.filter((binding) => binding.role === role).flatMap((binding) => binding.members);
  }

  /** The policy as getIamPolicy answers it to a client asking for `requested` (0, 1 or 3). */
  read(requested: number): PolicyJson {
    const full = requested >= 3 || !this.conditional;
    const bindings = this.bindings.map((binding) =>
      !binding.condition || full
        ? structuredClone(binding)
        : { role: `${binding.role}_withcond_${hash(binding.condition)}`, members: [...binding.members] },
    );
    return {
      version: this.conditional && full ? 3 : 1,
      etag: this.etag,
      ...(bindings.length ? { bindings } : {}),
      ...(this.auditConfigs?.length ? { auditConfigs: structuredClone(this.auditConfigs) } : {}),
    };
  }

  /** Replaces a member everywhere (a deleted account); keeps the etag, as the policy itself did not change. */
  rewriteMember(from: string, to: string): boolean {
    let changed = false;
    for (const binding of this.bindings)
      binding.members = binding.members.map((member) => (member === from ? ((changed = true), to) : member));
    return changed;
  }
}

const hash = (condition: ExprJson) =>
  createHash("sha256").update(conditionKey(condition)).digest("hex").slice(0, 20);

/** What a policy on a resource of `project` may hold: roles and members the IAM model knows. */
export function bindingChecker(iam: IamState | undefined, project: string) {
  return (binding: BindingJson, had: (member: string) => boolean): string | undefined => {
    const custom = /^projects\/([^/]+)\/roles\/([^/]+)$/.exec(binding.role);
    if (binding.role.includes("_withcond_"))
      return `Role ${binding.role} is a version 1 rendering of a conditional binding, not a role; read the policy with requestedPolicyVersion 3`;
    if (custom) {
      if (custom[1] !== project) return `Role ${binding.role} is not a role of project ${project}.`;
      const phase = iam?.rolePhase(binding.role);
      if (iam && !phase) return `Role ${binding.role} does not exist.`;
      if (phase && phase !== "active" && binding.members.some((member) => !had(member)))
        return `Role ${binding.role} is deleted: it cannot be granted.`;
    } else if (!/^roles\/[a-zA-Z0-9_.]+$/.test(binding.role)) return `Role ${binding.role} is not supported.`;
    for (const member of binding.members) {
      if (!MEMBER.test(member))
        return `Member ${member} is of an unknown type. Please set a valid type prefix for the member.`;
      const account = /^serviceAccount:(.+@([^.]+)\.iam\.gserviceaccount\.com)$/.exec(member);
      if (iam && account && account[2] === project && !iam.exists(account[1]))
        return `Service account ${account[1]} does not exist.`;
    }
    return undefined;
  };
}

/** getIamPolicy: `requested` is options.requestedPolicyVersion, from a body or a query parameter. */
export function getPolicy(policy: IamPolicy, requested: unknown): FakeResponse {
  const version = Number(requested ?? 0);
  if (![0, 1, 3].includes(version))
    return rpcError(400, "INVALID_ARGUMENT", `Invalid requested policy version: ${String(requested)}.`);
  return { json: policy.read(version) };
}

/** setIamPolicy: checks the request whole, then replaces what its mask names. */
export function setPolicy(
  policy: IamPolicy,
  body: unknown,
  check: ReturnType<typeof bindingChecker>,
): FakeResponse {
  const { policy: wanted, updateMask } = (body ?? {}) as { policy?: PolicyJson; updateMask?: string };
  const invalid = (message: string) => rpcError(400, "INVALID_ARGUMENT", message);
  if (!wanted) return invalid("A policy is required.");
  // The documented default mask: bindings and etag.
  const paths = maskPaths(updateMask);
  const mask = paths.length ? paths : ["bindings", "etag"];
  const wrong = mask.filter((path) => !["bindings", "etag", "auditConfigs", "version"].includes(path));
  if (wrong.length) return invalid(`Invalid update_mask paths: ${wrong.join(", ")}`);
  if (wanted.etag && wanted.etag !== policy.etag)
    return rpcError(
      409,
      "ABORTED",
      "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.",
    );
  const version = wanted.version ?? 0;
  if (![0, 1, 3].includes(version)) return invalid(`Invalid policy version ${version}.`);
  const merged = new Map<string, BindingJson>();
  if (mask.includes("bindings")) {
    const had = new Set(policy.bindings.flatMap((b) => b.members.map((m) => `${bindingKey(b)}\n${m}`)));
    for (const [i, sent] of (wanted.bindings ?? []).entries()) {
      const binding = { ...sent, members: sent.members ?? [] };
      if (!binding.role) return invalid(`bindings[${i}]: a role is required.`);
      if (binding.condition) {
        if (version !== 3)
          return invalid(`bindings[${i}] has a condition: conditional role bindings need policy version 3.`);
        if (!binding.condition.expression || !binding.condition.title)
          return invalid(`bindings[${i}].condition needs an expression and a title.`);
        if (BASIC_ROLES.includes(binding.role))
          return invalid(`bindings[${i}]: conditions cannot be used with the basic role ${binding.role}.`);
      }
      const problem = check(binding, (member) => had.has(`${bindingKey(binding)}\n${member}`));
      if (problem) return invalid(problem);
      const key = bindingKey(binding);
      const into = merged.get(key) ?? { ...structuredClone(binding), members: [] };
      into.members = [...new Set([...into.members, ...binding.members])];
      merged.set(key, into);
    }
    // A version 1 set would drop the conditions it cannot see: GCP refuses it.
    if (policy.conditional && version !== 3)
      return invalid("The policy has conditional role bindings: a set must use policy version 3.");
  }
  if (mask.includes("bindings")) policy.bindings = [...merged.values()].filter((b) => b.members.length > 0);
  if (mask.includes("auditConfigs")) policy.auditConfigs = structuredClone(wanted.auditConfigs ?? []);
  policy.etag = bytesEtag();
  return { json: policy.read(3) };
}

/**
 * Project policies (Resource Manager v3). Projects must be known: GCP answers 403 for a project that does
 * not exist (so as not to tell). Each starts with an owner binding, so tests can check that a client's
 * read-modify-write keeps bindings it does not own.
 */
export class ProjectIamState {
  readonly policies = new Map<string, IamPolicy>();

  constructor(
    readonly iam?: IamState,
    projects: string[] = ["p1"],
    readonly owner = "user:owner@example.com",
  ) {
    for (const project of projects) this.addProject(project);
    iam?.onAccountDeleted((email, uid) => {
      for (const policy of this.policies.values())
        policy.rewriteMember(`serviceAccount:${email}`, `deleted:serviceAccount:${email}?uid=${uid}`);
    });
  }

  addProject(project: string): IamPolicy {
    const policy = new IamPolicy(bytesEtag());
    policy.bindings.push({ role: "roles/owner", members: [this.owner] });
    this.policies.set(project, policy);
    return policy;
  }

  policy(project: string): IamPolicy {
    const policy = this.policies.get(project);
    if (!policy) throw new Error(`no project ${project}`);
    return policy;
  }
}

export function installProjectIam(fake: GoogleApiFake, state = new ProjectIamState()): ProjectIamState {
  const known = (resource: string) => state.policies.get(resource.replace(/^projects\//, ""));
  const denied = () => rpcError(403, "PERMISSION_DENIED", "The caller does not have permission");
  fake.on("cloudresourcemanager.projects.getIamPolicy", (request) => {
    const policy = known(request.params.resource);
    const options = (request.json as { options?: { requestedPolicyVersion?: number } } | undefined)?.options;
    return policy ? getPolicy(policy, options?.requestedPolicyVersion) : denied();
  });
  fake.on("cloudresourcemanager.projects.setIamPolicy", (request) => {
    const policy = known(request.params.resource);
    const project = request.params.resource.replace(/^projects\//, "");
    return policy ? setPolicy(policy, request.json, bindingChecker(state.iam, project)) : denied();
  });
  return state;
}
