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
}

export const armError = (status: number, code: string, message: string): ArmResponse => ({
  status,
  body: { error: { code, message } },
});

export class ArmFake {
  readonly violations: string[] = [];
  readonly log: LoggedRequest[] = [];
  readonly specs: SpecSet;
  readonly ca: string;
  endpoint = "";
  /** How many times an operation's status reads InProgress before it ends. */
  pollsBeforeDone = 1;
  private readonly handlers = new Map<string, Handler>();
  private readonly throttles = new Map<string, { times: number; retryAfter: number }>();
  private readonly operations = new Map<string, AsyncOperation>();
  private readonly server: Server;

  private constructor(specFiles: string[]) {
    this.specs = new SpecSet(specFiles);
    const { key, cert } = localCertificate();
    this.ca = cert;
    this.server = createServer({ key, cert }, (req, res) => void this.serve(req, res));
  }

  /** Starts a fake that knows the operations of `specFiles` (paths under ../shared/reference/apis/azure). */
  static async start(specFiles: string[]): Promise<ArmFake> {
    const fake = new ArmFake(specFiles);
    await new Promise<void>((resolve) => fake.server.listen(0, "127.0.0.1", resolve));
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

  /** The next `times` calls of an operation get 429 Too Many Requests with Retry-After, as ARM throttles. */
  throttle(operationId: string, times: number, retryAfterSeconds = 1): void {
    this.throttles.set(operationId, { times, retryAfter: retryAfterSeconds });
  }

  /**
   * Starts an asynchronous operation the way ARM models long-running calls: the caller answers with the
   * returned headers (Azure-AsyncOperation, Location, Retry-After) and the client polls the status URL.
   */
  asyncOperation(
    request: ArmRequest,
    outcome: Outcome,
    finish: AsyncOperation["finish"],
  ): Record<string, string> {
    const id = randomUUID();
    this.operations.set(id, { polls: 0, outcome, finish, done: false });
    const namespace = /\/providers\/([^/]+)\//i.exec(request.path)?.[1] ?? "Microsoft.Resources";
    const subscription = request.params.subscriptionId ?? "00000000-0000-0000-0000-000000000000";
    const url = `${this.endpoint}/subscriptions/${subscription}/providers/${namespace}/locations/local/operations/${id}?api-version=${request.operation.apiVersion}`;
    return { "Azure-AsyncOperation": url, Location: url, "Retry-After": "0" };
  }

  private pollOperation(id: string): ArmResponse {
    const operation = this.operations.get(id);
    if (!operation) return armError(404, "OperationNotFound", `no operation ${id}`);
    if (operation.polls++ < this.pollsBeforeDone)
      return { status: 200, body: { name: id, status: "InProgress" } };
    if (!operation.done) {
      operation.done = true;
      operation.finish(operation.outcome);
    }
    return { status: 200, body: { name: id, ...operation.outcome } };
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.endpoint);
    const path = url.pathname;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    let answer: ArmResponse;
    let operationId: string | undefined;
    const status = /\/providers\/[^/]+\/locations\/[^/]+\/operations\/([^/]+)$/i.exec(path);
    if (req.method === "GET" && status) answer = this.pollOperation(status[1]!);
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
