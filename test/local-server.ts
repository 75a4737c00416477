/** HTTP servers on 127.0.0.1 for the download tests, closed after each test so a failure cannot hang jest. */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Handler = (req: IncomingMessage, res: ServerResponse, count: number) => void;

const listening = new Set<() => Promise<void>>();
afterEach(async () => {
  await Promise.all([...listening].map((close) => close()));
});

/** A server that records every request (and its path) and answers with the handler. */
export async function serve(handler: Handler) {
  const requests: IncomingMessage[] = [];
  const paths: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    paths.push(req.url!);
    handler(req, res, requests.length);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const close = () =>
    new Promise<void>((resolve) => {
      listening.delete(close);
      server.closeAllConnections();
      server.close(() => resolve());
    });
  listening.add(close);
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, paths };
}
