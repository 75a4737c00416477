import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { ExitCode, KubebakeError } from "../errors";
import { unreachable, UNRESOLVABLE } from "../fetch/download";

/**
 * A small client of the OCI distribution API, enough to pull by digest: GET manifests and blobs, answer
 * a 401's challenge (anonymous or with Docker-config credentials, bearer token or basic), follow the
 * redirects registries answer blob requests with. No npm package does this and is kept up; it is ~150 lines.
 */
export const MANIFEST_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
];

export interface Credentials {
  username: string;
  password: string;
}

/** Finds a registry's credentials the way docker does: $DOCKER_CONFIG/config.json or ~/.docker/config.json. */
export function dockerCredentials(
  host: string,
  env: NodeJS.ProcessEnv = process.env,
): Credentials | undefined {
  const file = join(env.DOCKER_CONFIG ?? join(homedir(), ".docker"), "config.json");
  let config: {
    auths?: Record<string, { auth?: string; username?: string; password?: string }>;
    credHelpers?: Record<string, string>;
    credsStore?: string;
  };
  try {
    config = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new KubebakeError(
      `${file}: not a Docker config file (${(error as Error).message})`,
      ExitCode.invalidInput,
    );
  }
  const keys =
    host === "docker.io" ? ["docker.io", "https://index.docker.io/v1/", "index.docker.io"] : [host];
  const helper = keys.map((k) => config.credHelpers?.[k]).find(Boolean) ?? config.credsStore;
  for (const key of [...keys, ...keys.map((k) => `https://${k}`)]) {
    const entry = config.auths?.[key];
    if (!entry) continue;
    if (entry.auth) {
      const [username, ...rest] = Buffer.from(entry.auth, "base64").toString("utf8").split(":");
      return { username: username!, password: rest.join(":") };
    }
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  }
  return helper ? fromHelper(helper, keys[keys.length > 1 ? 1 : 0]!, file) : undefined;
}

/** docker-credential-<helper> get: the server on stdin, {Username, Secret} on stdout; never on a command line. */
function fromHelper(helper: string, server: string, file: string): Credentials | undefined {
  const result = spawnSync(`docker-credential-${helper}`, ["get"], { input: server, encoding: "utf8" });
  if (result.error || result.status !== 0) {
    if (/not found/i.test(result.stdout ?? "")) return undefined;
    throw new KubebakeError(
      `${file}: the credential helper docker-credential-${helper} failed for ${server}` +
        (result.error ? ` (${(result.error as NodeJS.ErrnoException).code})` : ""),
      ExitCode.downloadFailed,
    );
  }
  const answer = JSON.parse(result.stdout) as { Username: string; Secret: string };
  return { username: answer.Username, password: answer.Secret };
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="https://…",service="…",scope="…"`. */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g))
    params[p[1]!.toLowerCase()] = p[2] ?? p[3]!;
  return { scheme: m[1]!.toLowerCase(), params };
}

export class RegistryClient {
  /** Requests made, for "a warm bake asks nothing". */
  requests = 0;
  private readonly tokens = new Map<string, string>();

  constructor(
    private readonly credentialsFor: (host: string) => Credentials | undefined = dockerCredentials,
  ) {}

  /**
   * The headers that authorize pulls from repository: the first call asks the registry's /v2/ (as docker
   * does) and answers its challenge, with a pull scope for this repository.
   */
  async authorization(endpoint: string, repository: string): Promise<Record<string, string>> {
    const key = `${endpoint}/${repository}`;
    if (!this.tokens.has(key)) {
      const url = `${endpoint}/v2/`;
      const response = await this.send(url, {});
      await response.body?.cancel();
      if (response.status === 401)
        await this.answer(endpoint, repository, response.headers.get("www-authenticate") ?? "", url);
      else this.tokens.set(key, "");
    }
    const value = this.tokens.get(key);
    return value ? { authorization: value } : {};
  }

  private async send(url: string, headers: Record<string, string>): Promise<Response> {
    this.requests++;
    return fetch(url, { redirect: "follow", headers }).catch((error: unknown) => {
      const cause = (error as { cause?: { code?: string; hostname?: string } }).cause;
      if (cause?.code !== undefined && UNRESOLVABLE.has(cause.code)) {
        throw unreachable(cause.hostname ?? new URL(url).hostname, url, cause.code);
      }
      throw new KubebakeError(
        `cannot reach ${url}: ${cause?.code ?? (error as Error).message}`,
        ExitCode.downloadFailed,
      );
    });
  }

  private async answer(endpoint: string, repository: string, header: string, url: string): Promise<void> {
    const host = new URL(endpoint).host;
    const challenge = parseChallenge(header);
    const credentials = this.credentialsFor(host === "registry-1.docker.io" ? "docker.io" : host);
    const basic = credentials
      ? `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}`
      : undefined;
    const key = `${endpoint}/${repository}`;
    if (challenge?.scheme === "basic") {
      if (!basic)
        throw new KubebakeError(
          `GET ${url}: the registry asks for credentials and the Docker config file has none for ${host}`,
          ExitCode.downloadFailed,
        );
      this.tokens.set(key, basic);
      return;
    }
    if (challenge?.scheme !== "bearer" || !challenge.params.realm) {
      throw new KubebakeError(
        `GET ${url}: HTTP 401 without a bearer or basic challenge`,
        ExitCode.downloadFailed,
      );
    }
    const realm = new URL(challenge.params.realm);
    if (challenge.params.service) realm.searchParams.set("service", challenge.params.service);
    // Always this repository's pull scope: the /v2/ ping's challenge may carry a placeholder scope (ghcr.io
    // sends repository:user/image:pull), which would earn a token for another repository.
    realm.searchParams.set("scope", `repository:${repository}:pull`);
    this.requests++;
    const response = await fetch(realm, { headers: basic ? { authorization: basic } : {} }).catch(
      (error: unknown) => {
        throw new KubebakeError(
          `cannot reach the token service ${realm.origin}: ${(error as Error).message}`,
          ExitCode.downloadFailed,
        );
      },
    );
    if (!response.ok) {
      await response.body?.cancel();
      throw new KubebakeError(
        `the token service ${realm.origin}${realm.pathname} refused a pull token for ${repository}: HTTP ${response.status}` +
          (basic ? "" : " (anonymous; credentials come from the Docker config file)"),
        ExitCode.downloadFailed,
      );
    }
    const body = (await response.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token)
      throw new KubebakeError(
        `the token service ${realm.origin} answered without a token`,
        ExitCode.downloadFailed,
      );
    this.tokens.set(key, `Bearer ${token}`);
  }
}
