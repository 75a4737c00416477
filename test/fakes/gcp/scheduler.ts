import { maskPaths, page } from "./common";
import { rpcError, type FakeRequest, type FakeResponse, type GoogleApiFake } from "./fake";
import { applyMask } from "./longrunning";

/**
 * Cloud Scheduler v1 behind the fake: jobs with HTTP targets. What it holds clients to:
 * - a job is named by the client (`projects/P/locations/L/jobs/ID`, ID `[A-Za-z0-9_-]{1,500}`, under the
 *   request's parent); a duplicate is 409 ALREADY_EXISTS, a missing one 404 NOT_FOUND;
 * - the schedule must be a 5-field unix cron (ranges, lists, steps, month and day names), the time zone
 *   a tz database name; the target an http(s) URI, a body only with POST, PUT or PATCH (base64), at most
 *   one of oidcToken and oauthToken, whose service account must exist; attemptDeadline within [15s, 30m];
 * - patch without updateMask replaces every field; with one, only its paths change (`name` cannot);
 * - pause and resume switch `state`; run records an attempt. `fire(name)` sends the job's request for
 *   real, for tests that want the target to see it.
 * Answers carry GCP's defaults (POST, Etc/UTC, 180s, the retry config). English-like schedules ("every
 * 5 minutes"), App Engine and Pub/Sub targets are not modelled (400 and 501), nor is `scheduleTime`.
 */
type Json = Record<string, any>;
export type JobState = "ENABLED" | "PAUSED";

export interface StoredJob {
  /** The client's fields, name included. */
  config: Json;
  state: JobState;
  userUpdateTime: string;
  lastAttemptTime?: string;
  status?: { code?: number; message?: string };
  /** Attempts so far (run and fire). */
  attempts: number;
}

const JOB_NAME = /^projects\/[^/]+\/locations\/[^/]+\/jobs\/[A-Za-z0-9_-]{1,500}$/;
const FIELDS = [
  "description",
  "schedule",
  "timeZone",
  "httpTarget",
  "pubsubTarget",
  "appEngineHttpTarget",
  "retryConfig",
  "attemptDeadline",
];
const DURATION = /^(\d+(?:\.\d{1,9})?)s$/;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

export class SchedulerState {
  /** Jobs by name. */
  readonly jobs = new Map<string, StoredJob>();

  /** `serviceAccountExists`: for oidcToken and oauthToken accounts (default: all exist). */
  constructor(readonly options: { serviceAccountExists?: (email: string) => boolean } = {}) {}

  /** Sends a job's HTTP request now, as Cloud Scheduler would; records the attempt's outcome. */
  async fire(name: string): Promise<{ status: number; body: string }> {
    const job = this.jobs.get(name);
    if (!job) throw new Error(`no job ${name}`);
    const target = job.config.httpTarget as Json;
    const token = target.oidcToken ?? target.oauthToken;
    const body = target.body === undefined ? undefined : Buffer.from(target.body, "base64");
    const res = await fetch(target.uri, {
      method: target.httpMethod ?? "POST",
      headers: {
        // Scheduler's default content type, unless the job sets one (in any case).
        ...(body && !Object.keys(target.headers ?? {}).some((key) => /^content-type$/i.test(key))
          ? { "content-type": "application/octet-stream" }
          : {}),
        ...target.headers,
        "user-agent": "Google-Cloud-Scheduler",
        "x-cloudscheduler": "true",
        "x-cloudscheduler-jobname": name.split("/").pop()!,
        ...(token ? { authorization: `Bearer fake-token-of-${token.serviceAccountEmail}` } : {}),
      },
      body,
    });
    job.attempts++;
    job.lastAttemptTime = new Date().toISOString();
    job.status = res.ok ? {} : { code: res.status === 404 ? 5 : 2, message: `HTTP ${res.status}` };
    return { status: res.status, body: await res.text() };
  }
}

export function installScheduler(fake: GoogleApiFake, state = new SchedulerState()): SchedulerState {
  const m = "cloudscheduler.projects.locations.jobs";
  const withJob =
    (then: (job: StoredJob, request: FakeRequest) => FakeResponse) => (request: FakeRequest) => {
      const job = state.jobs.get(request.params.name);
      return job ? then(job, request) : rpcError(404, "NOT_FOUND", "Job not found.");
    };
  fake.on(`${m}.create`, (request) => {
    const body = (request.json ?? {}) as Json;
    if (typeof body.name !== "string" || !JOB_NAME.test(body.name))
      return invalid(`Job.name is required and must be ${request.params.parent}/jobs/ID (ID [A-Za-z0-9_-])`);
    if (!body.name.startsWith(`${request.params.parent}/jobs/`))
      return invalid(`Job.name ${body.name} is not under ${request.params.parent}`);
    if (state.jobs.has(body.name)) return rpcError(409, "ALREADY_EXISTS", `Job ${body.name} already exists.`);
    const config = userFields(body);
    const problem = jobProblem(config, state);
    if (problem) return problem;
    const job: StoredJob = {
      config,
      state: "ENABLED",
      userUpdateTime: new Date().toISOString(),
      attempts: 0,
    };
    state.jobs.set(body.name, job);
    return { json: jobJson(job) };
  });
  fake.on(
    `${m}.get`,
    withJob((job) => ({ json: jobJson(job) })),
  );
  fake.on(`${m}.list`, (request) => {
    const all = [...state.jobs.values()]
      .filter((job) => job.config.name.startsWith(`${request.params.parent}/jobs/`))
      .sort((a, b) => a.config.name.localeCompare(b.config.name));
    const found = page(all, {
      pageSize: request.query.get("pageSize"),
      pageToken: request.query.get("pageToken"),
      tag: `jobs:${request.params.parent}`,
      default: 500,
      max: 500,
    });
    if (!found) return invalid("Invalid page token");
    return {
      json: {
        ...(found.items.length ? { jobs: found.items.map(jobJson) } : {}),
        ...(found.nextPageToken ? { nextPageToken: found.nextPageToken } : {}),
      },
    };
  });
  fake.on(
    `${m}.patch`,
    withJob((job, request) => {
      const body = userFields((request.json ?? {}) as Json);
      const paths = maskPaths(request.query.get("updateMask"));
      let config: Json = { ...body, name: job.config.name };
      if (paths.length) {
        config = structuredClone(job.config);
        const wrong = applyMask(config, body, paths, (path) => FIELDS.includes(path.split(".")[0]));
        if (wrong) return invalid(wrong);
      } else if (body.name !== undefined && body.name !== job.config.name)
        return invalid("Job.name cannot be changed");
      const problem = jobProblem(config, state);
      if (problem) return problem;
      Object.assign(job, { config, userUpdateTime: new Date().toISOString() });
      return { json: jobJson(job) };
    }),
  );
  fake.on(
    `${m}.delete`,
    withJob((job) => {
      state.jobs.delete(job.config.name);
      return { json: {} };
    }),
  );
  const transition = (to: JobState) =>
    withJob((job) => {
      Object.assign(job, { state: to, userUpdateTime: new Date().toISOString() });
      return { json: jobJson(job) };
    });
  fake.on(`${m}.pause`, transition("PAUSED"));
  fake.on(`${m}.resume`, transition("ENABLED"));
  fake.on(
    `${m}.run`,
    withJob((job) => {
      job.attempts++;
      job.lastAttemptTime = new Date().toISOString();
      return { json: jobJson(job) };
    }),
  );
  return state;
}

const invalid = (message: string) => rpcError(400, "INVALID_ARGUMENT", message);

const userFields = (body: Json): Json =>
  Object.fromEntries(
    Object.entries(structuredClone(body)).filter(([key]) => key === "name" || FIELDS.includes(key)),
  );

function jobJson(job: StoredJob): Json {
  const { httpTarget, retryConfig, ...rest } = structuredClone(job.config);
  return {
    ...rest,
    ...(httpTarget ? { httpTarget: { httpMethod: "POST", ...httpTarget } } : {}),
    timeZone: rest.timeZone ?? "Etc/UTC",
    attemptDeadline: rest.attemptDeadline ?? "180s",
    retryConfig: {
      maxRetryDuration: "0s",
      minBackoffDuration: "5s",
      maxBackoffDuration: "3600s",
      maxDoublings: 5,
      ...retryConfig,
    },
    state: job.state,
    userUpdateTime: job.userUpdateTime,
    ...(job.lastAttemptTime ? { lastAttemptTime: job.lastAttemptTime } : {}),
    ...(job.status ? { status: job.status } : {}),
  };
}

function jobProblem(job: Json, state: SchedulerState): FakeResponse | undefined {
  if (!job.schedule) return invalid("Job.schedule is required");
  const cron = cronProblem(job.schedule);
  if (cron) return invalid(`Schedule "${job.schedule}" is not valid: ${cron}`);
  if (job.timeZone !== undefined && !isTimeZone(job.timeZone))
    return invalid(`Invalid time zone ${job.timeZone}`);
  if (job.description !== undefined && job.description.length > 500)
    return invalid("Job.description is longer than 500 characters");
  const targets = ["httpTarget", "pubsubTarget", "appEngineHttpTarget"].filter((t) => job[t] !== undefined);
  if (targets.length !== 1) return invalid("A job needs exactly one target");
  if (!job.httpTarget) return rpcError(501, "UNIMPLEMENTED", `the fake does not model ${targets[0]}`);
  const target = job.httpTarget as Json;
  if (!/^https?:\/\/[^/\s]+/.test(target.uri ?? "") || !URL.canParse(target.uri))
    return invalid(`HttpTarget.uri must be an http:// or https:// URL, got ${target.uri}`);
  const method = target.httpMethod ?? "POST";
  if (target.body !== undefined && !["POST", "PUT", "PATCH"].includes(method))
    return invalid(`A body is allowed only with POST, PUT or PATCH, not ${method}`);
  if (target.body !== undefined && !BASE64.test(target.body)) return invalid("HttpTarget.body is not base64");
  if (target.oidcToken && target.oauthToken) return invalid("At most one of oidcToken and oauthToken");
  const email = (target.oidcToken ?? target.oauthToken)?.serviceAccountEmail;
  if ((target.oidcToken ?? target.oauthToken) && !email)
    return invalid("The token needs a serviceAccountEmail");
  if (email && !(state.options.serviceAccountExists?.(email) ?? true))
    return invalid(`Service account ${email} does not exist`);
  if (job.attemptDeadline !== undefined) {
    const seconds = Number(DURATION.exec(job.attemptDeadline)?.[1]);
    if (!(seconds >= 15 && seconds <= 1800))
      return invalid(
        `attemptDeadline must be within [15s, 1800s] for HTTP targets, got ${job.attemptDeadline}`,
      );
  }
  const retry = (job.retryConfig ?? {}) as Json;
  if (retry.retryCount !== undefined && !(retry.retryCount >= 0 && retry.retryCount <= 5))
    return invalid(`retryCount must be within [0, 5], got ${retry.retryCount}`);
  for (const key of ["maxRetryDuration", "minBackoffDuration", "maxBackoffDuration"])
    if (retry[key] !== undefined && !DURATION.test(retry[key]))
      return invalid(`Invalid duration ${key}: ${retry[key]}`);
  return undefined;
}

const isTimeZone = (zone: string) => {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
};

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const CRON_FIELDS = [
  { what: "minute", min: 0, max: 59 },
  { what: "hour", min: 0, max: 23 },
  { what: "day of month", min: 1, max: 31 },
  { what: "month", min: 1, max: 12, names: MONTHS, first: 1 },
  { what: "day of week", min: 0, max: 7, names: DAYS, first: 0 },
];

/** A unix cron schedule's problem: five fields of `*`, values, ranges and steps, joined by commas. */
export function cronProblem(schedule: string): string | undefined {
  const fields = schedule.trim().split(/\s+/);
  if (fields.length !== 5) return `a unix cron schedule has 5 fields, got ${fields.length}`;
  for (const [i, field] of fields.entries()) {
    const { what, min, max, names, first } = CRON_FIELDS[i];
    const value = (text: string) => {
      const named = names?.indexOf(text.toUpperCase()) ?? -1;
      return named >= 0 ? named + first! : /^\d+$/.test(text) ? Number(text) : NaN;
    };
    for (const item of field.split(",")) {
      const match = /^(?:(\*)|(\w+)(?:-(\w+))?)(?:\/(\d+))?$/.exec(item);
      if (!match) return `invalid ${what} "${item}"`;
      const [, star, from, to, step] = match;
      if (!star) {
        const low = value(from);
        const high = to === undefined ? low : value(to);
        if (!(low >= min && high <= max && low <= high))
          return `${what} "${item}" is out of [${min}, ${max}]`;
        if (step !== undefined && to === undefined) return `a ${what} step needs * or a range, got "${item}"`;
      }
      if (step !== undefined && !(Number(step) >= 1 && Number(step) <= max))
        return `invalid ${what} step "${item}"`;
    }
  }
  return undefined;
}
