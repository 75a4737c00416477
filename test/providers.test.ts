import { spawn } from "node:child_process";
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

type Route = (req: IncomingMessage, body: string) => { status?: number; body: string } | undefined;

async function fake(route: Route) {
  const seen: { method: string; url: string; headers: IncomingMessage["headers"]; body: string }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      const answer = route(req, body) ?? { status: 404, body: "not found" };
      res.writeHead(answer.status ?? 200).end(answer.body);
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

describe("aws provider", () => {
  const creds = {
    AccessKeyId: "AKIDEXAMPLE",
    SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    Token: "session/token+=",
  };
  const secret = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n";
  let signatureChecks = 0;

  async function signatureOf(req: IncomingMessage, body: string): Promise<string> {
    const authorization = String(req.headers.authorization);
    const signed = /SignedHeaders=([^,]+)/.exec(authorization)![1]!.split(";");
    const headers = Object.fromEntries(signed.map((h) => [h, String(req.headers[h])]));
    const amzDate = String(req.headers["x-amz-date"]);
    const signingDate = new Date(
      `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
    );
    const signer = new SignatureV4({
      service: "ssm",
      region: "eu-west-1",
      sha256: Sha256,
      applyChecksum: false,
      credentials: {
        accessKeyId: creds.AccessKeyId,
        secretAccessKey: creds.SecretAccessKey,
        sessionToken: creds.Token,
      },
    });
    const request = new HttpRequest({
      method: req.method,
      protocol: "http:",
      hostname: String(req.headers.host),
      path: req.url,
      headers,
      body,
    });
    const result = await signer.sign(request, { signingDate });
    return String(result.headers.authorization);
  }

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
        signatureOf(req, body).then((expected) => {
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
