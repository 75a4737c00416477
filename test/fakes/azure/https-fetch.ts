/**
 * A fetch for code that takes one (src/discover/azure-rest.ts) to reach an ArmFake: node:https trusting the
 * fake's own CA, since the global fetch offers no way to add one. Answers are whole Responses.
 */
import { request } from "node:https";
import type { Fetch } from "../../../src/discover/azure-rest";

/** Statuses whose Response must have no body. */
const NO_BODY = new Set([101, 204, 205, 304]);

export function httpsFetch(ca: string): Fetch {
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const req = request(
        url,
        { method: init.method, ca, headers: Object.fromEntries(init.headers) },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("error", reject);
          res.on("end", () => {
            const headers = new Headers();
            for (const [name, value] of Object.entries(res.headers))
              if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
            const status = res.statusCode ?? 0;
            resolve(new Response(NO_BODY.has(status) ? null : Buffer.concat(chunks), { status, headers }));
          });
        },
      );
      req.on("error", reject);
      req.end(init.body);
    });
}
