/**
 * A real registry for the tests: Debian's docker-registry (the CNCF distribution server) on 127.0.0.1,
 * behind a small front that behaves as public registries do: /v2/ answers 401 with a bearer challenge,
 * a token service hands out pull tokens (optionally only for basic credentials), and blob requests are
 * answered with a redirect to a separate "storage" origin, which must never see the token. The front also
 * serves plain files (a --mirror URL holds both) and can tamper with chosen blobs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join, normalize } from "node:path";
import { execFileSync } from "node:child_process";

export interface FrontOptions {
  /** Basic credentials the token service requires; anonymous pulls when absent. */
  credentials?: { username: string; password: string };
  /** Non-/v2 paths are served from this folder (a file mirror). */
  files?: string;
}

export interface TestRegistry {
  /** The registry itself (no auth): pushes go here. */
  direct: string;
  /** The front: what a bake talks to (host:port, and as a URL). */
  host: string;
  url: string;
  /** Blob digests the storage origin serves altered. */
  tamper: Set<string>;
  /** Requests the front and storage answered, by kind. */
  counts: { ping: number; token: number; manifest: number; blob: number; storage: number; file: number };
  /** Authorization headers storage received (must stay empty: fetch drops them on a cross-origin redirect). */
  storageAuthorizations: string[];
  stop(): Promise<void>;
}

const listen = (server: Server) =>
  new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)),
  );

async function freePort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await new Promise((r) => server.close(r));
  return port;
}

async function waitFor(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr()}`);
    try {
      const response = await fetch(url);
      if (response.status === 200) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`docker-registry did not answer ${url}: ${stderr()}`);
}

export async function startRegistry(work: string, options: FrontOptions = {}): Promise<TestRegistry> {
  mkdirSync(join(work, "storage"), { recursive: true });
  const port = await freePort();
  const config = join(work, "config.yml");
  writeFileSync(
    config,
    [
      "version: 0.1",
      "log: { level: error }",
      `storage: { filesystem: { rootdirectory: ${join(work, "storage")} } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      "",
    ].join("\n"),
  );
  let errors = "";
  const child = spawn("docker-registry", ["serve", config], { stdio: ["ignore", "ignore", "pipe"] });
  child.stderr!.on("data", (d: Buffer) => (errors += d.toString()));
  const direct = `http://127.0.0.1:${port}`;
  await waitFor(`${direct}/v2/`, child, () => errors);

  /** Issued tokens and the scope each was asked for. */
  const tokens = new Map<string, string>();
  const tamper = new Set<string>();
  const counts = { ping: 0, token: 0, manifest: 0, blob: 0, storage: 0, file: 0 };
  const storageAuthorizations: string[] = [];

  const storage = createServer((req, res) => {
    counts.storage++;
    if (req.headers.authorization) storageAuthorizations.push(req.headers.authorization);
    void proxy(`${direct}${req.url}`, req, res, (body) => {
      const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? "")?.[1];
      if (!digest || !tamper.has(digest)) return body;
      const altered = Buffer.from(body);
      altered[altered.length - 1] ^= 0xff; // same size, other bytes
      return altered;
    });
  });
  const storagePort = await listen(storage);

  let frontPort = 0;
  const challenge = (scope?: string) =>
    `Bearer realm="http://127.0.0.1:${frontPort}/token",service="kubebake-test"${scope ? `,scope="${scope}"` : ""}`;
  const front = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://front");
    if (url.pathname === "/token") {
      counts.token++;
      const want = options.credentials;
      const given = req.headers.authorization;
      const basic = want && `Basic ${Buffer.from(`${want.username}:${want.password}`).toString("base64")}`;
      if (basic && given !== basic) return reply(res, 401, { errors: [{ code: "UNAUTHORIZED" }] });
      const token = randomBytes(16).toString("hex");
      tokens.set(token, url.searchParams.get("scope") ?? "");
      return reply(res, 200, { token, expires_in: 300 });
    }
    if (url.pathname === "/v2/") {
      counts.ping++;
      // As ghcr.io does: the ping's challenge names a placeholder repository, not the one a client wants.
      res.writeHead(401, {
        "www-authenticate": challenge("repository:user/image:pull"),
        "content-type": "application/json",
      });
      return res.end("{}");
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (m) {
      const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1];
      // A token is good only for the repository it was issued for.
      if (!token || tokens.get(token) !== `repository:${m[1]}:pull`) {
        res.writeHead(401, { "www-authenticate": challenge(`repository:${m[1]}:pull`) });
        return res.end();
      }
      if (m[2] === "manifests") {
        counts.manifest++;
        return void proxy(`${direct}${url.pathname}`, req, res, (body) =>
          tamper.has(m[3]!) ? Buffer.concat([body, Buffer.from(" ")]) : body,
        );
      }
      counts.blob++;
      res.writeHead(307, { location: `http://127.0.0.1:${storagePort}${url.pathname}` });
      return res.end();
    }
    if (options.files) {
      counts.file++;
      const path = normalize(join(options.files, decodeURIComponent(url.pathname)));
      if (path.startsWith(options.files) && existsSync(path) && statSync(path).isFile()) {
        res.writeHead(200, { "content-length": statSync(path).size });
        return void createReadStream(path).pipe(res);
      }
    }
    res.writeHead(404);
    res.end();
  });
  frontPort = await listen(front);
  const close = (s: Server) => new Promise((r) => s.close(r));
  return {
    direct,
    host: `127.0.0.1:${frontPort}`,
    url: `http://127.0.0.1:${frontPort}`,
    tamper,
    counts,
    storageAuthorizations,
    stop: async () => {
      front.closeAllConnections();
      storage.closeAllConnections();
      await Promise.all([close(front), close(storage)]);
      child.kill();
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
    },
  };
}

function reply(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function proxy(
  url: string,
  req: IncomingMessage,
  res: ServerResponse,
  alter?: (body: Buffer) => Buffer,
) {
  const upstream = await fetch(url, { headers: req.headers.accept ? { accept: req.headers.accept } : {} });
  let body: Buffer = Buffer.from(await upstream.arrayBuffer());
  if (alter && upstream.ok) body = alter(body);
  const headers: Record<string, string> = { "content-length": String(body.length) };
  for (const h of ["content-type", "docker-content-digest"]) {
    const v = upstream.headers.get(h);
    if (v) headers[h] = v;
  }
  res.writeHead(upstream.status, headers);
  res.end(body);
}

// ---------------------------------------------------------------------------------------------------
// OCI images made by the tests, and a pusher.

const sha = (data: Buffer) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  body: Buffer;
}

const blob = (mediaType: string, body: Buffer): Blob => ({
  mediaType,
  digest: sha(body),
  size: body.length,
  body,
});
const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/** A one-layer image for each architecture, under an index; the layer holds files (path → content). */
export function makeImage(files: Record<string, string>, arches: string[] = ["amd64"]) {
  const blobs: Blob[] = [];
  const manifests: (Blob & { arch: string })[] = [];
  for (const arch of arches) {
    const dir = join(mkdtempLike(), "root");
    mkdirSync(dir, { recursive: true });
    for (const [path, content] of Object.entries({ ...files, "arch.txt": arch })) {
      mkdirSync(join(dir, path, ".."), { recursive: true });
      writeFileSync(join(dir, path), content);
    }
    const tar = execFileSync("tar", [
      "--sort=name",
      "--mtime=@0",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "-C",
      dir,
      "-cf",
      "-",
      ".",
    ]);
    const layer = blob(
      "application/vnd.oci.image.layer.v1.tar+gzip",
      execFileSync("gzip", ["-n"], { input: tar }),
    );
    const config = blob(
      "application/vnd.oci.image.config.v1+json",
      json({ architecture: arch, os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [sha(tar)] } }),
    );
    const manifest = blob(
      "application/vnd.oci.image.manifest.v1+json",
      json({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
        layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }],
      }),
    );
    blobs.push(layer, config);
    manifests.push({ ...manifest, arch });
  }
  const index = blob(
    "application/vnd.oci.image.index.v1+json",
    json({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: manifests.map((m) => ({
        mediaType: m.mediaType,
        digest: m.digest,
        size: m.size,
        platform: { architecture: m.arch, os: "linux" },
      })),
    }),
  );
  return { index, manifests, blobs };
}

let scratchCount = 0;
function mkdtempLike(): string {
  const dir = join(
    process.env.KUBEBAKE_TEST_SCRATCH ?? "/tmp",
    `kubebake-image-${process.pid}-${scratchCount++}`,
  );
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function putBlob(registry: string, repository: string, b: { digest: string; body: Buffer }) {
  const start = await fetch(`${registry}/v2/${repository}/blobs/uploads/`, { method: "POST" });
  if (start.status !== 202) throw new Error(`push ${repository}: POST uploads: HTTP ${start.status}`);
  const location = new URL(start.headers.get("location")!, registry);
  location.searchParams.set("digest", b.digest);
  const put = await fetch(location, {
    method: "PUT",
    headers: { "content-type": "application/octet-stream" },
    body: b.body,
  });
  if (put.status !== 201)
    throw new Error(`push ${repository} ${b.digest}: HTTP ${put.status} ${await put.text()}`);
}

async function putManifest(
  registry: string,
  repository: string,
  ref: string,
  b: { mediaType: string; body: Buffer },
) {
  const put = await fetch(`${registry}/v2/${repository}/manifests/${ref}`, {
    method: "PUT",
    headers: { "content-type": b.mediaType },
    body: b.body,
  });
  if (put.status !== 201)
    throw new Error(`push ${repository}:${ref}: HTTP ${put.status} ${await put.text()}`);
}

/** Pushes a made image; returns the index digest. */
export async function pushImage(
  registry: string,
  repository: string,
  tag: string,
  image: ReturnType<typeof makeImage>,
) {
  for (const b of image.blobs) await putBlob(registry, repository, b);
  for (const m of image.manifests) await putManifest(registry, repository, m.digest, m);
  await putManifest(registry, repository, tag, image.index);
  return image.index.digest;
}

/** Pushes an OCI image layout folder (one image, index.json's first entry) as repository:tag. */
export async function pushLayout(
  registry: string,
  layout: string,
  repository: string,
  tag: string,
): Promise<string> {
  const read = (digest: string) =>
    readFileSync(join(layout, "blobs", "sha256", digest.replace("sha256:", "")));
  const top = (
    JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as {
      manifests: { digest: string; mediaType: string }[];
    }
  ).manifests[0]!;
  const pushManifest = async (d: { digest: string; mediaType: string }, ref: string) => {
    const body = read(d.digest);
    const parsed = JSON.parse(body.toString()) as {
      manifests?: { digest: string; mediaType: string }[];
      config?: { digest: string };
      layers?: { digest: string }[];
    };
    for (const child of parsed.manifests ?? []) await pushManifest(child, child.digest);
    for (const b of [parsed.config, ...(parsed.layers ?? [])].filter(Boolean) as { digest: string }[]) {
      await putBlob(registry, repository, { digest: b.digest, body: read(b.digest) });
    }
    await putManifest(registry, repository, ref, { mediaType: d.mediaType, body });
  };
  await pushManifest(top, tag);
  return top.digest;
}
