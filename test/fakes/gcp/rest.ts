/** A plain REST client for the fake's own tests: fetch with a bearer token and JSON, as Google's clients. */
export interface RestAnswer {
  status: number;
  headers: Headers;
  json: any;
}

export function restClient(base: () => string) {
  return async (method: string, path: string, body?: unknown): Promise<RestAnswer> => {
    const res = await fetch(`${base()}${path}`, {
      method,
      headers: {
        authorization: "Bearer test-token",
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
  };
}
