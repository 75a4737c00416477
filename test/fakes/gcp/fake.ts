import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { loadDiscovery, routesOf, type DiscoveryDocument, type Route } from "./discovery";
import { enumsByName, matchPath, validateBody, validateQuery, validateValue } from "./validate";

/**
 * A local fake of Google APIs: every request is checked against the official discovery documents (path,
 * verb, parameters, body fields and types) before a handler registered for its method id sees it. A request
 * Google would refuse gets Google's error answer and is recorded in `invalid`, so a test can assert that
 * its client only sent what the real API accepts. Handlers hold the state (see storage.ts, compute.ts).
 */
export interface FakeRequest {
  methodId: string;
  httpMethod: string;
  /** The path template's parameters, decoded. */
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The parsed body, when it is JSON. */
  json?: unknown;
  /** For a media upload path: its protocol ("simple" or "resumable"). */
  upload?: string;
  /** For a request to a resumable upload session URI: the session's id (its `upload_id`). */
  session?: string;
  /** This fake's base URL, to mint URLs (session URIs, selfLinks). */
  baseUrl: string;
}

export interface FakeResponse {
  status?: number;
  headers?: Record<string, string>;
  json?: unknown;
  /** Raw bytes instead of JSON (media downloads). */
  body?: Buffer;
  /** Lose the answer: the handler's effect stays, the connection is cut before any byte is sent. */
  dropAnswer?: boolean;
}

export type Handler = (request: FakeRequest) => FakeResponse | Promise<FakeResponse>;

/** A request to a raw route (a URL the fake minted itself, such as a signed upload URL). */
export interface RawRequest {
  httpMethod: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
  baseUrl: string;
}

export type RawHandler = (request: RawRequest) => FakeResponse | Promise<FakeResponse>;

export interface InvalidRequest {
  request: string;
  problems: string[];
}

/** Google's JSON error answer (the shape every JSON API front end uses). */
export function googleError(code: number, message: string, reason = reasonFor(code)): FakeResponse {
  return {
    status: code,
    json: { error: { code, message, errors: [{ message, domain: "global", reason }] } },
  };
}

const reasonFor = (code: number) =>
  ({ 400: "invalid", 401: "required", 403: "forbidden", 404: "notFound", 409: "conflict" })[code] ??
  "backendError";

/** The canonical status names (google.rpc.Code) by HTTP status, as `error.status` carries them. */
export const CANONICAL_STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "ALREADY_EXISTS",
  429: "RESOURCE_EXHAUSTED",
  499: "CANCELLED",
  500: "INTERNAL",
  501: "UNIMPLEMENTED",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

/**
 * The error answer of the APIs served by the One Platform front end (IAM, Resource Manager v3, Secret
 * Manager): `{error: {code, message, status}}` without the legacy `errors` list. `status` is the canonical
 * code, which tells apart answers sharing an HTTP status (409 ALREADY_EXISTS or ABORTED, 400
 * INVALID_ARGUMENT or FAILED_PRECONDITION).
 */
export function rpcError(code: number, status: string, message: string): FakeResponse {
  return { status: code, json: { error: { code, message, status } } };
}

export class GoogleApiFake {
  /** Requests the real API would have refused (and answers of handlers that break the documents). */
  readonly invalid: InvalidRequest[] = [];
  /** Every request, in order: `<method id> <verb> <path>` and the status answered. */
  readonly log: { methodId: string; httpMethod: string; path: string; status: number }[] = [];
  private readonly documents: DiscoveryDocument[];
  private readonly routes: Route[];
  private readonly handlers = new Map<string, Handler>();
  private readonly raws = new Map<string, RawHandler>();
  /** Injected failures by method id: statuses still to answer (see failNext). */
  private readonly failures = new Map<string, number[]>();
  private server?: Server;
  private base = "";

  /** `apis`: discovery document names in the reference folder (`compute.v1`) or loaded documents. */
  constructor(apis: (string | DiscoveryDocument)[]) {
    this.documents = apis.map((api) => (typeof api === "string" ? loadDiscovery(api) : api));
    this.routes = this.documents.flatMap(routesOf);
  }

  /** Registers the handler of a method id; an id the documents do not have is a mistake in the test. */
  on(methodId: string, handler: Handler): this {
    if (!this.routes.some((route) => route.method.id === methodId))
      throw new Error(
        `no method ${methodId} in ${this.documents.map((d) => `${d.name}.${d.version}`).join(", ")}`,
      );
    this.handlers.set(methodId, handler);
    return this;
  }

  /**
   * The next `times` valid requests of `methodId` answer Google's error with `status` before any handler
   * runs (a quota, an outage, a lost race), so a test can check its client retries; a 429 also carries
   * `Retry-After: 0`, which clients honour without slowing the test. Requests the documents refuse still
   * get their 400 and do not use up a failure.
   */
  failNext(methodId: string, status: number, times = 1): this {
    if (!this.routes.some((route) => route.method.id === methodId)) throw new Error(`no method ${methodId}`);
    this.failures.set(methodId, [
      ...(this.failures.get(methodId) ?? []),
      ...Array<number>(times).fill(status),
    ]);
    return this;
  }

  /**
   * Serves the paths under `pathPrefix` with `handler`, before and outside discovery routing and without a
   * bearer token: URLs a model mints for clients to use as is (a signed upload URL). A 4xx answer is the
   * client misusing the URL, so it is recorded in `invalid` too.
   */
  raw(pathPrefix: string, handler: RawHandler): this {
    this.raws.set(pathPrefix, handler);
    return this;
  }

  handler(methodId: string): Handler | undefined {
    return this.handlers.get(methodId);
  }

  get url(): string {
    return this.base;
  }

  get port(): number {
    return (this.server!.address() as AddressInfo).port;
  }

  /** Listens on 127.0.0.1 on a free port; resolves to the base URL. */
  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.serve(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.base = `http://127.0.0.1:${this.port}`;
    return this.base;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server!.close(resolve));
    this.server = undefined;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url!, this.base);
    const label = `${req.method} ${url.pathname}${url.search}`;
    let answer: FakeResponse;
    let methodId = "?";
    const raw = [...this.raws].find(([prefix]) => url.pathname.startsWith(prefix));
    try {
      if (raw) {
        methodId = `raw ${raw[0]}`;
        answer = await this.answerRaw(raw[1], req, url, Buffer.concat(chunks), label);
      } else {
        const checked = this.check(req, url, Buffer.concat(chunks));
        if ("problems" in checked) {
          this.invalid.push({ request: label, problems: checked.problems });
          answer = googleError(checked.status, checked.problems.join("; "));
        } else {
          methodId = checked.request.methodId;
          answer = await this.answer(checked.request, checked.route, label);
        }
      }
    } catch (error) {
      this.invalid.push({ request: label, problems: [`the fake failed: ${(error as Error).stack}`] });
      answer = googleError(500, (error as Error).message);
    }
    const status = answer.status ?? 200;
    this.log.push({ methodId, httpMethod: req.method!, path: url.pathname, status });
    if (answer.dropAnswer) {
      res.socket?.destroy();
      return;
    }
    const body = answer.body ?? (answer.json === undefined ? "" : JSON.stringify(answer.json));
    res.writeHead(status, {
      ...(answer.json !== undefined ? { "content-type": "application/json; charset=UTF-8" } : {}),
      ...answer.headers,
    });
    res.end(body);
  }

  private async answerRaw(
    handler: RawHandler,
    req: IncomingMessage,
    url: URL,
    body: Buffer,
    label: string,
  ): Promise<FakeResponse> {
    const answer = await handler({
      httpMethod: req.method!,
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body,
      baseUrl: this.base,
    });
    const status = answer.status ?? 200;
    if (status >= 400 && status < 500)
      this.invalid.push({ request: label, problems: [`${status} ${answer.body ?? ""}`] });
    return answer;
  }

  private check(
    req: IncomingMessage,
    url: URL,
    body: Buffer,
  ): { request: FakeRequest; route: Route } | { status: number; problems: string[] } {
    const query = new URLSearchParams(url.search);
    const session = query.get("upload_id") ?? undefined;
    const candidates = this.routes
      .map((route) => ({ route, params: matchPath(route, url.pathname) }))
      .filter((c): c is { route: Route; params: Record<string, string> } => c.params !== undefined)
      .filter((c) => (session ? c.route.upload !== undefined : true))
      .sort((a, b) => b.route.literal - a.route.literal);
    if (candidates.length === 0) return { status: 404, problems: [`no method has the path ${url.pathname}`] };
    // A session URI is minted by the server (upload_id); its requests are PUTs of bytes or a DELETE to cancel.
    const verbs = (route: Route) => (session ? ["PUT", "POST", "DELETE"] : [route.method.httpMethod]);
    const found = candidates.find((c) => verbs(c.route).includes(req.method!));
    if (!found)
      return {
        status: 404,
        problems: [
          `${req.method} ${url.pathname}: the path is ${candidates.map((c) => `${c.route.method.httpMethod} ${c.route.method.id}`).join(", ")}`,
        ],
      };
    const { route, params } = found;
    if (!session && !/^Bearer \S+/.test(req.headers.authorization ?? ""))
      return { status: 401, problems: [`${route.method.id}: the request has no OAuth 2 bearer token`] };
    if (session) query.delete("upload_id");
    const problems = validateQuery(route.document, route.method, query);
    if (route.upload && !query.has("uploadType"))
      problems.push(`${route.method.id}: an upload needs uploadType`);
    let json: unknown;
    const isJson = /^application\/json/.test(req.headers["content-type"] ?? "");
    if (body.length > 0 && isJson && !session) {
      try {
        json = JSON.parse(body.toString("utf8"));
      } catch {
        problems.push(`Invalid JSON payload received: ${body.toString("utf8").slice(0, 80)}`);
      }
      if (json !== undefined && route.method.request && /enum-encoding=int/.test(query.get("$alt") ?? ""))
        json = enumsByName(route.document, route.method.request, json);
      if (json !== undefined) problems.push(...validateBody(route.document, route.method, json));
    } else if (body.length > 0 && !route.upload && !session) {
      problems.push(
        `${route.method.id}: a body must be application/json, got ${req.headers["content-type"]}`,
      );
    }
    if (problems.length > 0) return { status: 400, problems };
    return {
      route,
      request: {
        methodId: route.method.id,
        httpMethod: req.method!,
        params,
        query,
        headers: req.headers,
        body,
        json,
        upload: route.upload,
        session,
        baseUrl: this.base,
      },
    };
  }

  private async answer(request: FakeRequest, route: Route, label: string): Promise<FakeResponse> {
    const failure = this.failures.get(request.methodId)?.shift();
    if (failure !== undefined) return injectedError(failure);
    const handler = this.handlers.get(request.methodId);
    if (!handler) {
      this.invalid.push({ request: label, problems: [`the fake has no handler for ${request.methodId}`] });
      return googleError(501, `${request.methodId} is not implemented by the fake`);
    }
    const answer = await handler(request);
    const status = answer.status ?? 200;
    // A handler answers 400 for what the documents cannot say (a chunk size, a name's form): still a refusal.
    if (status === 400) this.invalid.push({ request: label, problems: [JSON.stringify(answer.json)] });
    // The fake's own answers must follow the documents too, or tests would pass against a wrong fake.
    if (status < 300 && answer.json !== undefined && route.method.response) {
      const problems = validateValue(
        route.document,
        route.method.response,
        answer.json,
        route.method.response.$ref,
      );
      if (problems.length > 0)
        this.invalid.push({ request: label, problems: problems.map((p) => `fake answer: ${p}`) });
    }
    return answer;
  }
}

/** An injected failure: both error shapes (legacy `errors[].reason` and canonical `status`) in one answer. */
function injectedError(code: number): FakeResponse {
  const message = `injected failure ${code}`;
  const reason = code === 429 ? "rateLimitExceeded" : reasonFor(code);
  return {
    status: code,
    headers: code === 429 ? { "retry-after": "0" } : undefined,
    json: {
      error: {
        code,
        message,
        errors: [{ message, domain: "global", reason }],
        status: CANONICAL_STATUS[code] ?? "UNKNOWN",
      },
    },
  };
}
