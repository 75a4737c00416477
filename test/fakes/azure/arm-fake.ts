/**
 * A local Azure Resource Manager for tests: https on 127.0.0.1 (a free port), every request checked against
 * the official OpenAPI descriptions the test loads, answered by handlers registered per operationId.
 * A request the descriptions do not allow gets ARM's error shape (400) and is recorded in `violations`,
 * so a test that ends with violations fails even when the client swallowed the error.
 */
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { SpecSet, type Json, type JsonObject, type Operation } from "./openapi";
import { checkRequest } from "./request-check";
import { checkValue } from "./schema-check";
import { localCertificate } from "./tls";

export interface ArmRequest {
  operation: Operation;
  method: string;
  /** The request path, decoded, without the query. */
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingMessage["headers"];
  body: Json | undefined;
}

export interface ArmResponse {
  status: number;
  body?: Json;
  headers?: Record<string, string>;
  /** Lose the answer: the handler's effect stays, the connection is cut before any byte is sent. */
  dropAnswer?: boolean;
}

export type Handler = (request: ArmRequest) => ArmResponse | Promise<ArmResponse>;

export interface LoggedRequest {
  method: string;
  path: string;
  operationId?: string;
  status: number;
}

/** How an asynchronous operation ends, decided when it is polled for the last time. */
export type Outcome =
  { status: "Succeeded" } | { status: "Failed" | "Canceled"; error: { code: string; message: string } };

interface AsyncOperation {
  polls: number;
  outcome: Outcome;
  /** Applies the operation's effect (the resource becomes Succeeded, or is removed) once it ends. */
  finish: (outcome: Outcome) => void;
  done: boolean;
  /** For a Location-only operation: the final resource the monitor URL answers once done. */
  result?: () => Json;
}

export interface StartOptions {
  /** Share another fake's record of violations, so a cloud served by several fakes has one list. */
  violations?: string[];
  /** Listen on this port (a restarted data-plane host keeps its address); a free one by default. */
  port?: number;
}

/** A request as it arrived, before it is checked against the descriptions. */
export interface RawRequest {
  method: string;
  url: URL;
  headers: IncomingMessage["headers"];
}

export const armError = (status: number, code: string, message: string): ArmResponse => ({
  status,
  body: { error: { code, message } },
});

export class ArmFake {
  readonly violations: string[];
  readonly log: LoggedRequest[] = [];
  readonly specs: SpecSet;
  readonly ca: string;
  endpoint = "";
  /**
   * Answers a request before it is checked, or lets it through (undefined): a data plane's authentication
   * challenge, which the client's first request, sent without a token on purpose, must get. It may also
   * rewrite `url` in place, for a path fragment a description marks required but documents as optional.
   */
  intercept?: (request: RawRequest) => ArmResponse | undefined;
  /** How many times an operation's status reads InProgress before it ends. */
  pollsBeforeDone = 1;
  private readonly handlers = new Map<string, Handler>();
  private readonly throttles = new Map<string, { times: number; retryAfter: number }>();
  private readonly operations = new Map<string, AsyncOperation>();
  private readonly failures = new Map<string, Outcome>();
  private readonly server: Server;

  private constructor(specFiles: string[], violations: string[]) {
    this.violations = violations;
    this.specs = new SpecSet(specFiles);
    const { key, cert } = localCertificate();
    this.ca = cert;
    this.server = createServer({ key, cert }, (req, res) => void this.serve(req, res));
  }

  /** Starts a fake that knows the operations of `specFiles` (paths under ../shared/reference/apis/azure). */
  static async start(specFiles: string[], options: StartOptions = {}): Promise<ArmFake> {
    const fake = new ArmFake(specFiles, options.violations ?? []);
    await new Promise<void>((resolve, reject) => {
      fake.server.once("error", reject);
      fake.server.listen(options.port ?? 0, "127.0.0.1", resolve);
    });
    fake.endpoint = `https://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
    return fake;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  on(operationId: string, handler: Handler): this {
    if (!this.specs.operations.some((op) => op.operationId === operationId))
      throw new Error(`no loaded description defines the operation ${operationId}`);
    this.handlers.set(operationId, handler);
    return this;
  }

  /** The handler registered for an operation, so that a test can wrap it (a fault at its nth call). */
  handler(operationId: string): Handler | undefined {
    return this.handlers.get(operationId);
  }

  /**
   * The next asynchronous operation a call of `operationId` starts ends Failed with `error`; its effect is
   * the model's to decide (most apply it: the work was done, its success is what the caller never learns).
   */
  failNextOperation(operationId: string, error: { code: string; message: string }): void {
    this.failures.set(operationId, { status: "Failed", error });
  }

  /** The next `times` calls of an operation get 429 Too Many Requests with Retry-After, as ARM throttles. */
  throttle(operationId: string, times: number, retryAfterSeconds = 1): void {
    this.throttles.set(operationId, { times, retryAfter: retryAfterSeconds });
  }

  /**
   * Starts an asynchronous operation the way ARM models long-running calls: the caller answers with the
   * returned headers (Azure-AsyncOperation, Location, Retry-After) and the client polls the status URL.
   * With `result`, the operation is announced by Location alone (as Storage does): that monitor URL answers
   * 202 while it runs, then 200 with the final resource, which a client reads as the operation's result.
   */
  asyncOperation(
    request: ArmRequest,
    outcome: Outcome,
    finish: AsyncOperation["finish"],
    result?: () => Json,
  ): Record<string, string> {
    const id = randomUUID();
    const failure = this.failures.get(request.operation.operationId);
    this.failures.delete(request.operation.operationId);
    this.operations.set(id, { polls: 0, outcome: failure ?? outcome, finish, done: false, result });
    const namespace = /\/providers\/([^/]+)\//i.exec(request.path)?.[1] ?? "Microsoft.Resources";
    const subscription = request.params.subscriptionId ?? "00000000-0000-0000-0000-000000000000";
    const url = `${this.endpoint}/subscriptions/${subscription}/providers/${namespace}/locations/local/operations/${id}?api-version=${request.operation.apiVersion}`;
    if (result) return { Location: `${url}&monitor=true`, "Retry-After": "0" };
    return { "Azure-AsyncOperation": url, Location: url, "Retry-After": "0" };
  }

  private pollOperation(id: string, url: URL): ArmResponse {
    const operation = this.operations.get(id);
    if (!operation) return armError(404, "OperationNotFound", `no operation ${id}`);
    const monitor = operation.result && url.searchParams.get("monitor") === "true";
    if (operation.polls++ < this.pollsBeforeDone)
      return monitor
        ? { status: 202, headers: { Location: url.href, "Retry-After": "0" } }
        : { status: 200, body: { name: id, status: "InProgress" } };
    if (!operation.done) {
      operation.done = true;
      operation.finish(operation.outcome);
    }
    if (monitor)
      return operation.outcome.status === "Succeeded"
        ? { status: 200, body: operation.result!() }
        : armError(400, operation.outcome.error.code, operation.outcome.error.message);
    return { status: 200, body: { name: id, ...operation.outcome } };
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Appended, not resolved: clients send a scope of `/{scope}/…` as `//subscriptions/…`, which
    // resolving would read as a host name.
    const url = new URL(`${this.endpoint}${req.url ?? "/"}`);
    const path = url.pathname;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    let answer: ArmResponse;
    let operationId: string | undefined;
    const status = /\/providers\/[^/]+\/locations\/[^/]+\/operations\/([^/]+)$/i.exec(path);
    const intercepted = this.intercept?.({ method: req.method ?? "GET", url, headers: req.headers });
    if (intercepted) answer = intercepted;
    else if (req.method === "GET" && status) answer = this.pollOperation(status[1]!, url);
    else {
      const checked = checkRequest(this.specs, req.method ?? "GET", url, req.headers, raw);
      operationId = checked.operation?.operationId;
      if (checked.problems.length > 0) {
        const message = `${req.method} ${path}: ${checked.problems.join("; ")}`;
        this.violations.push(message);
        answer = armError(400, checked.code, message);
      } else answer = await this.dispatch(checked.request!);
    }
    this.log.push({ method: req.method ?? "GET", path, operationId, status: answer.status });
    if (answer.dropAnswer) {
      res.socket?.destroy();
      return;
    }
    const body = answer.body === undefined ? "" : JSON.stringify(answer.body);
    res.writeHead(answer.status, {
      ...(body ? { "Content-Type": "application/json; charset=utf-8" } : {}),
      "x-ms-request-id": randomUUID(),
      ...answer.headers,
    });
    res.end(body);
  }

  private async dispatch(request: ArmRequest): Promise<ArmResponse> {
    const { operationId } = request.operation;
    const throttle = this.throttles.get(operationId);
    if (throttle && throttle.times > 0) {
      throttle.times--;
      return {
        ...armError(
          429,
          "TooManyRequests",
          `${operationId} is throttled; retry after ${throttle.retryAfter}s`,
        ),
        headers: { "Retry-After": String(throttle.retryAfter) },
      };
    }
    const handler = this.handlers.get(operationId);
    if (!handler) {
      this.violations.push(`${request.method} ${request.path}: no handler is registered for ${operationId}`);
      return armError(501, "NotImplemented", `the fake has no handler for ${operationId}`);
    }
    const answer = await handler(request);
    this.checkResponse(request, answer);
    return answer;
  }

  /** The fake's own answers must match the description too: a handler bug would otherwise pass unseen. */
  private checkResponse(request: ArmRequest, answer: ArmResponse): void {
    const { operation } = request;
    const declared = Object.hasOwn(operation.responses, String(answer.status));
    if (!declared && answer.status < 400 && answer.status !== 412) {
      this.violations.push(
        `${operation.operationId}: the fake answered ${answer.status}, not a declared status`,
      );
      return;
    }
    const schema = operation.responses[declared ? String(answer.status) : "default"];
    if (!schema || answer.body === undefined) return;
    for (const problem of checkValue(this.specs, schema, answer.body, "response", "response"))
      this.violations.push(`${operation.operationId} (fake's answer): ${problem}`);
  }
}

export type { Json, JsonObject };
