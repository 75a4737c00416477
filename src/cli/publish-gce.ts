/**
 * `--target gce`: project, bucket and credentials checked before the bake (and the bucket asked for, so a
 * wrong name or a missing permission costs a second, not a bake); the archive upload and images.insert after.
 */
import { invalidInput } from "../errors";
import type { GceAuthClient } from "../publish/gce/auth";
import type { GcePublishOptions } from "../publish/gce";
import { publishStep, required, type PublishStep } from "./publish";

export interface GcePublishArgs {
  project?: string;
  bucket?: string;
  family?: string;
}

export async function prepareGce(args: GcePublishArgs): Promise<PublishStep> {
  const project = required(args.project, "project", "gce", ["GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"]);
  const bucket = required(args.bucket, "bucket", "gce");
  const { publishGce } = await import("../publish/gce");
  const { applicationDefaultCredentials, headersOf } = await import("../publish/gce/auth");
  const { checkBucket } = await import("../publish/gce/storage");
  const endpoints = testEndpoints();
  const authClient = (endpoints && testCredential()) || (await applicationDefaultCredentials());
  await checkBucket(
    { baseUrl: endpoints?.storage ?? "https://storage.googleapis.com", headers: () => headersOf(authClient) },
    bucket,
  );
  const options: GcePublishOptions = { project, bucket, family: args.family, authClient, endpoints };
  return publishStep((request) => publishGce(request, options));
}

/**
 * Test hook: KUBEBAKE_GCE_ENDPOINTS='{"compute":"http://127.0.0.1:P","storage":"http://127.0.0.1:P"}'
 * points the publish at a local fake (plain http).
 */
function testEndpoints(): GcePublishOptions["endpoints"] {
  const raw = process.env.KUBEBAKE_GCE_ENDPOINTS;
  if (!raw) return undefined;
  try {
    const { compute, storage } = JSON.parse(raw) as { compute: string; storage: string };
    const url = new URL(compute);
    return {
      compute: { host: url.hostname, port: Number(url.port) },
      storage: String(new URL(storage)).replace(/\/$/, ""),
    };
  } catch {
    throw invalidInput(
      'KUBEBAKE_GCE_ENDPOINTS: expected {"compute":"http://HOST:PORT","storage":"http://HOST:PORT"}',
    );
  }
}

/** Test hook, honoured only with KUBEBAKE_GCE_ENDPOINTS: a fixed bearer token instead of real credentials. */
function testCredential(): GceAuthClient | undefined {
  const token = process.env.KUBEBAKE_GCE_TEST_TOKEN;
  if (!token) return undefined;
  const authorize = (headers?: ConstructorParameters<typeof Headers>[0]) => {
    const all = new Headers(headers);
    all.set("authorization", `Bearer ${token}`);
    return all;
  };
  return {
    getRequestHeaders: async () => authorize(),
    fetch: (url, init) => fetch(url, { ...init, headers: authorize(init?.headers) }),
  };
}
