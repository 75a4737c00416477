import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { repoRoot, tempDir } from "./helpers";

// Each cloud provider's node-side script, run against a local fake of its metadata and secret services.
const work = tempDir("providers");
const nodeDir = join(repoRoot, "src", "node");

type Route = (
  req: IncomingMessage,
  body: string,
) => { status?: number; body: string; headers?: Record<string, string> } | undefined;

async function fake(route: Route) {
  const seen: { method: string; url: string; headers: IncomingMessage["headers"]; body: string }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      const answer = route(req, body) ?? { status: 404, body: "not found" };
      res.writeHead(answer.status ?? 200, answer.headers ?? {}).end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () => new Promise((resolve) => server.close(resolve));
  return { base, seen, close };
}

/** Runs `provider_<fn> args…` from providers/<name>.sh in bash, as node-config would (async: the fakes live here). */
function provider(name: string, call: string, env: Record<string, string>) {
  const script = `set -euo pipefail; . ${join(nodeDir, "lib.sh")}; . ${join(nodeDir, "providers", `${name}.sh`)}; ${call}`;
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    // stdin is not a socket, or bash would read ~/.bashrc as if run by a remote shell daemon
    const child = spawn("bash", ["-c", script], {
      env: { PATH: process.env.PATH!, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/** The AWS key pair and region the aws provider tests sign with (AWS's documentation example). */
const keys = {
  AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
  AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  AWS_SESSION_TOKEN: "session/token+=",
  AWS_REGION: "eu-west-1",
};

/** What the SDK's signer makes of the request the script sent, for the given service. */
async function sdkSignature(req: IncomingMessage, body: string, service: string): Promise<string> {
  const authorization = String(req.headers.authorization);
  const signed = /SignedHeaders=([^,]+)/.exec(authorization)![1]!.split(";");
  const headers = Object.fromEntries(signed.map((h) => [h, String(req.headers[h])]));
  const amzDate = String(req.headers["x-amz-date"]);
  const signingDate = new Date(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  const url = new URL(req.url!, "http://fake");
  const signer = new SignatureV4({
    service,
    region: keys.AWS_REGION,
    sha256: Sha256,
    applyChecksum: false,
    uriEscapePath: service !== "s3", // S3 signs the path as sent, each segment encoded once
    credentials: {
      accessKeyId: keys.AWS_ACCESS_KEY_ID,
      secretAccessKey: keys.AWS_SECRET_ACCESS_KEY,
      sessionToken: keys.AWS_SESSION_TOKEN,
    },
  });
  const request = new HttpRequest({
    method: req.method,
    protocol: "http:",
    hostname: String(req.headers.host),
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers,
    body,
  });
  return String((await signer.sign(request, { signingDate })).headers.authorization);
}

describe("aws provider", () => {
  // The instance role's credentials, as IMDS hands them out.
  const creds = {
    AccessKeyId: keys.AWS_ACCESS_KEY_ID,
    SecretAccessKey: keys.AWS_SECRET_ACCESS_KEY,
    Token: keys.AWS_SESSION_TOKEN,
  };
  const secret = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n";
  let signatureChecks = 0;

  test("reads identity through IMDSv2 and a SecureString from SSM, signed exactly as the AWS SDK signs", async () => {
    const pending: Promise<void>[] = [];
    const imds = await fake((req) => {
      if (req.method === "PUT" && req.url === "/latest/api/token") return { body: "imds-token" };
      if (req.headers["x-aws-ec2-metadata-token"] !== "imds-token") return { status: 401, body: "" };
      const answers: Record<string, string> = {
        "/latest/meta-data/local-hostname": "ip-10-0-1-7.eu-west-1.compute.internal",
        "/latest/meta-data/local-ipv4": "10.0.1.7",
        "/latest/meta-data/placement/region": "eu-west-1",
        "/latest/meta-data/iam/security-credentials/": "kubebake-demo-minions",
        "/latest/meta-data/iam/security-credentials/kubebake-demo-minions": JSON.stringify(creds),
      };
      return answers[req.url!] !== undefined ? { body: answers[req.url!]! } : undefined;
    });
    let authorizationOk = false;
    const ssm = await fake((req, body) => {
      pending.push(
        sdkSignature(req, body, "ssm").then((expected) => {
          authorizationOk = expected === req.headers.authorization;
          signatureChecks++;
        }),
      );
      const { Name, WithDecryption } = JSON.parse(body);
      if (req.headers["x-amz-target"] !== "AmazonSSM.GetParameter" || !WithDecryption)
        return { status: 400, body: "{}" };
      if (Name !== "/kubebake/demo/ca.crt") return { status: 400, body: '{"__type":"ParameterNotFound"}' };
      return { body: JSON.stringify({ Parameter: { Name, Type: "SecureString", Value: secret } }) };
    });
    const env = {
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.base,
      AWS_ENDPOINT_URL_SSM: ssm.base,
      SECRET_SOURCE: "ssm:/kubebake/demo",
    };
    try {
      expect((await provider("aws", "provider_node_name", env)).stdout).toBe(
        "ip-10-0-1-7.eu-west-1.compute.internal",
      );
      expect((await provider("aws", "provider_node_ip", env)).stdout).toBe("10.0.1.7");
      const dest = join(work, "aws-ca.crt");
      const fetched = await provider("aws", `provider_fetch_secret ca.crt ${dest}`, env);
      expect(fetched.stderr).toBe("");
      expect(fetched.status).toBe(0);
      expect(readFileSync(dest, "utf8")).toBe(secret);
      await Promise.all(pending);
      expect(signatureChecks).toBe(1);
      expect(authorizationOk).toBe(true);
      expect(ssm.seen[0]!.headers["x-amz-security-token"]).toBe(creds.Token);
      const missing = await provider("aws", `provider_fetch_secret nope ${join(work, "nope")}`, env);
      expect(missing.status).not.toBe(0);
    } finally {
      await imds.close();
      await ssm.close();
    }
  });

  test("refuses a secret source of another kind", async () => {
    const result = await provider("aws", "provider_fetch_secret ca.crt /dev/null", {
      SECRET_SOURCE: "files:/etc/kubebake/secrets",
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("SECRET_SOURCE 'files:/etc/kubebake/secrets' is not ssm:/prefix");
  });
});

describe("aws: the etcd snapshot store (S3) and the launch gate (Auto Scaling), signed as the SDK signs", () => {
  /** Runs a snapshot-store call the way etcd-member does: lib.sh, providers/aws.sh, then s3.sh. */
  function store(call: string, env: Record<string, string>) {
    return provider("aws", `. ${join(nodeDir, "s3.sh")}; ${call}`, env);
  }

  test("puts a snapshot with its digest, lists every page, and gets it back with the digest the store recorded", async () => {
    const objects = new Map<string, { body: string; sha256: string }>();
    const checks: Promise<boolean>[] = [];
    const s3 = await fake((req, body) => {
      checks.push(sdkSignature(req, body, "s3").then((expected) => expected === req.headers.authorization));
      const url = new URL(req.url!, "http://fake");
      if (req.method === "PUT" && url.pathname.startsWith("/kb-bucket/demo/etcd/")) {
        if (req.headers["x-amz-content-sha256"] !== createHash("sha256").update(body).digest("hex"))
          return { status: 400, body: "<Error><Code>XAmzContentSHA256Mismatch</Code></Error>" };
        objects.set(url.pathname.slice("/kb-bucket/".length), {
          body,
          sha256: String(req.headers["x-amz-meta-sha256"]),
        });
        return { body: "" };
      }
      if (
        req.method === "GET" &&
        url.pathname === "/kb-bucket" &&
        url.searchParams.get("list-type") === "2"
      ) {
        if (url.searchParams.get("prefix") !== "demo/etcd/") return { status: 400, body: "" };
        // Two pages: the first names one key and a token the second page is asked with.
        const token = url.searchParams.get("continuation-token");
        const [first, ...rest] = [...objects.keys()].sort();
        const page = token === "next/page+=" ? rest : [first!];
        const more =
          token === null
            ? "<IsTruncated>true</IsTruncated><NextContinuationToken>next/page+=</NextContinuationToken>"
            : "";
        return {
          body: `<ListBucketResult>${page.map((k) => `<Contents><Key>${k}</Key></Contents>`).join("")}${more}</ListBucketResult>`,
        };
      }
      const object = objects.get(url.pathname.slice("/kb-bucket/".length));
      if (req.method === "GET" && object)
        return { body: object.body, headers: { "x-amz-meta-sha256": object.sha256 } };
      return { status: 404, body: "<Error><Code>NoSuchKey</Code></Error>" };
    });
    const env = { ...keys, AWS_ENDPOINT_URL_S3: s3.base, SNAPSHOT_STORE: "s3://kb-bucket/demo/etcd" };
    try {
      const file = join(work, "snapshot.db");
      writeFileSync(file, "etcd snapshot bytes\n");
      expect(await store(`store_put ${file} 20261201T010000Z-r7.db`, env)).toMatchObject({
        status: 0,
        stderr: "",
      });
      expect(await store(`store_put ${file} 20261201T020000Z-r9.db`, env)).toMatchObject({ status: 0 });
      expect(objects.get("demo/etcd/20261201T010000Z-r7.db")?.sha256).toBe(
        createHash("sha256").update("etcd snapshot bytes\n").digest("hex"),
      );
      expect((await store("store_list", env)).stdout).toBe(
        "20261201T010000Z-r7.db\n20261201T020000Z-r9.db\n",
      );
      const dest = join(work, "restored.db");
      const got = await store(`store_get 20261201T020000Z-r9.db ${dest}`, env);
      expect(got).toMatchObject({
        status: 0,
        stdout: `${objects.get("demo/etcd/20261201T020000Z-r9.db")!.sha256}\n`,
      });
      expect(readFileSync(dest, "utf8")).toBe("etcd snapshot bytes\n");
      const missing = await store(`store_get nope.db ${dest}`, env);
      expect(missing.status).toBe(1);
      expect(missing.stderr).toContain("s3 GET demo/etcd/nope.db: HTTP 404 NoSuchKey");
      const results = await Promise.all(checks);
      expect(results.length).toBeGreaterThanOrEqual(6);
      expect(results.every(Boolean)).toBe(true);
    } finally {
      await s3.close();
    }
  });

  test("a store that is not s3://bucket/prefix is refused with the role file's value", async () => {
    const result = await store("store_list", { ...keys, SNAPSHOT_STORE: "s3://" });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("SNAPSHOT_STORE 's3://' is not s3://bucket/prefix");
  });

  test("completes the launch action of this instance; none waiting is fine; a refusal fails with AWS's message", async () => {
    const imds = await fake((req) => {
      if (req.method === "PUT" && req.url === "/latest/api/token") return { body: "imds-token" };
      if (req.url === "/latest/meta-data/instance-id") return { body: "i-0123456789abcdef0" };
      return undefined;
    });
    const answers = [
      { body: "<CompleteLifecycleActionResponse/>" },
      {
        status: 400,
        body: "<ErrorResponse><Error><Code>ValidationError</Code><Message>No active Lifecycle Action found with instance ID i-0123456789abcdef0</Message></Error></ErrorResponse>",
      },
      {
        status: 403,
        body: "<ErrorResponse><Error><Code>AccessDenied</Code><Message>not authorized to perform: autoscaling:CompleteLifecycleAction</Message></Error></ErrorResponse>",
      },
    ];
    const checks: Promise<boolean>[] = [];
    const autoscaling = await fake((req, body) => {
      checks.push(sdkSignature(req, body, "autoscaling").then((e) => e === req.headers.authorization));
      return answers.shift();
    });
    const env = {
      ...keys,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.base,
      AWS_ENDPOINT_URL_AUTO_SCALING: autoscaling.base,
      GROUP_NAME: "kubebake-demo-masters",
      LAUNCH_HOOK: "kubebake-etcd-voter",
    };
    try {
      const done = await provider("aws", "provider_instance_ready", env);
      expect(done).toMatchObject({ status: 0 });
      expect(done.stdout).toContain(
        "completed launch hook kubebake-etcd-voter of kubebake-demo-masters for i-0123456789abcdef0",
      );
      expect(Object.fromEntries(new URLSearchParams(autoscaling.seen[0]!.body))).toEqual({
        Action: "CompleteLifecycleAction",
        AutoScalingGroupName: "kubebake-demo-masters",
        InstanceId: "i-0123456789abcdef0",
        LifecycleActionResult: "CONTINUE",
        LifecycleHookName: "kubebake-etcd-voter",
        Version: "2011-01-01",
      });
      const again = await provider("aws", "provider_instance_ready", env);
      expect(again).toMatchObject({ status: 0 });
      expect(again.stdout).toContain("no launch action waits for i-0123456789abcdef0");
      const refused = await provider("aws", "provider_instance_ready", env);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toContain(
        "HTTP 403 not authorized to perform: autoscaling:CompleteLifecycleAction",
      );
      expect(await Promise.all(checks)).toEqual([true, true, true]);
    } finally {
      await imds.close();
      await autoscaling.close();
    }
  });
});

describe("gce provider", () => {
  test("reads identity from the metadata server and a secret from Secret Manager with its token", async () => {
    const metadata = await fake((req) => {
      if (req.headers["metadata-flavor"] !== "Google") return { status: 403, body: "" };
      const answers: Record<string, string> = {
        "/computeMetadata/v1/instance/name": "demo-minions-x7k2",
        "/computeMetadata/v1/instance/network-interfaces/0/ip": "10.128.0.5",
        "/computeMetadata/v1/instance/service-accounts/default/token": JSON.stringify({
          access_token: "ya29.token",
          expires_in: 3599,
        }),
      };
      return answers[req.url!] !== undefined ? { body: answers[req.url!]! } : undefined;
    });
    const secrets = await fake((req) => {
      if (req.headers.authorization !== "Bearer ya29.token") return { status: 401, body: "" };
      if (req.url !== "/v1/projects/p1/secrets/kubebake-demo-bootstrap-token/versions/latest:access")
        return undefined;
      return {
        body: JSON.stringify({
          payload: { data: Buffer.from("abcdef.0123456789abcdef").toString("base64") },
        }),
      };
    });
    const env = {
      GCE_METADATA_HOST: metadata.base.replace("http://", ""),
      GCE_SECRETMANAGER_ENDPOINT: secrets.base,
      SECRET_SOURCE: "secretmanager:projects/p1/secrets/kubebake-demo",
    };
    try {
      expect((await provider("gce", "provider_node_name", env)).stdout).toBe("demo-minions-x7k2");
      expect((await provider("gce", "provider_node_ip", env)).stdout).toBe("10.128.0.5");
      const dest = join(work, "gce-token");
      const fetched = await provider("gce", `provider_fetch_secret bootstrap-token ${dest}`, env);
      expect(fetched.stderr).toBe("");
      expect(readFileSync(dest, "utf8")).toBe("abcdef.0123456789abcdef");
    } finally {
      await metadata.close();
      await secrets.close();
    }
  });
});

describe("azure provider", () => {
  test("reads identity from IMDS and a secret from Key Vault with a managed-identity token", async () => {
    const imds = await fake((req) => {
      if (req.headers.metadata !== "true") return { status: 400, body: "" };
      if (req.url === "/metadata/instance?api-version=2021-02-01") {
        return {
          body: JSON.stringify({
            compute: { osProfile: { computerName: "Demo-Minions000003" } },
            network: { interface: [{ ipv4: { ipAddress: [{ privateIpAddress: "10.1.0.6" }] } }] },
          }),
        };
      }
      if (
        req.url ===
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
      ) {
        return { body: JSON.stringify({ access_token: "eyJ.vault" }) };
      }
      return undefined;
    });
    const vault = await fake((req) => {
      if (req.headers.authorization !== "Bearer eyJ.vault") return { status: 401, body: "" };
      if (req.url !== "/secrets/kubebake-demo-ca-crt?api-version=7.5") return undefined;
      return { body: JSON.stringify({ value: "PEM\n", id: "https://v/secrets/kubebake-demo-ca-crt/1" }) };
    });
    const env = {
      AZURE_IMDS_ENDPOINT: imds.base,
      AZURE_KEYVAULT_ENDPOINT: vault.base,
      SECRET_SOURCE: "keyvault:demo-vault/kubebake-demo",
    };
    try {
      expect((await provider("azure", "provider_node_name", env)).stdout).toBe("demo-minions000003\n");
      expect((await provider("azure", "provider_node_ip", env)).stdout).toBe("10.1.0.6\n");
      const dest = join(work, "azure-ca.crt");
      mkdirSync(work, { recursive: true });
      writeFileSync(dest, "");
      const fetched = await provider("azure", `provider_fetch_secret ca.crt ${dest}`, env);
      expect(fetched.stderr).toBe("");
      expect(readFileSync(dest, "utf8")).toBe("PEM\n");
    } finally {
      await imds.close();
      await vault.close();
    }
  });
});
