import { spawn, spawnSync } from "node:child_process";
import { createHash, createHmac, X509Certificate } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { join } from "node:path";
import { sdkAuthorization } from "./aws/sigv4";
import { startFakeSts } from "./aws/sts";
import { ArmFake, armError, type ArmRequest } from "./fakes/azure/arm-fake";
import { call } from "./fakes/azure/client";
import { VMSS_SPECS } from "./fakes/azure/compute-vmss";
import { installKeyVault, KEYVAULT_SPECS } from "./fakes/azure/keyvault";
import { localCertificate } from "./fakes/azure/tls";
import { GoogleApiFake, googleError } from "./fakes/gcp/fake";
import { repoRoot, tempDir } from "./helpers";
import { openssl, signCertificate } from "./openssl";

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
function sdkSignature(req: IncomingMessage, body: string, service: string): Promise<string> {
  return sdkSignatureWith(req, body, service, {
    AccessKeyId: keys.AWS_ACCESS_KEY_ID,
    SecretAccessKey: keys.AWS_SECRET_ACCESS_KEY,
    Token: keys.AWS_SESSION_TOKEN,
  });
}

/** The same, with the given credentials (as IMDS hands them out). */
const sdkSignatureWith = (
  req: IncomingMessage,
  body: string,
  service: string,
  creds: { AccessKeyId: string; SecretAccessKey: string; Token: string },
) =>
  sdkAuthorization(req, body, {
    service,
    region: keys.AWS_REGION,
    keys: {
      accessKeyId: creds.AccessKeyId,
      secretAccessKey: creds.SecretAccessKey,
      sessionToken: creds.Token,
    },
  });

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

/** IMDSv2 that knows this instance's id only (what the Auto Scaling calls ask for). */
const instanceImds = () =>
  fake((req) => {
    if (req.method === "PUT" && req.url === "/latest/api/token") return { body: "imds-token" };
    if (req.url === "/latest/meta-data/instance-id") return { body: "i-0123456789abcdef0" };
    return undefined;
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
    const imds = await instanceImds();
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

describe("aws: a master asks its group to replace it", () => {
  test("SetInstanceHealth Unhealthy for this instance, after its grace period, signed as the SDK signs", async () => {
    const imds = await instanceImds();
    const checks: Promise<boolean>[] = [];
    const autoscaling = await fake((req, body) => {
      checks.push(sdkSignature(req, body, "autoscaling").then((e) => e === req.headers.authorization));
      return { body: "<SetInstanceHealthResponse/>" };
    });
    try {
      const told = await provider("aws", "provider_instance_unhealthy", {
        ...keys,
        AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.base,
        AWS_ENDPOINT_URL_AUTO_SCALING: autoscaling.base,
      });
      expect({ status: told.status, stderr: told.stderr }).toEqual({ status: 0, stderr: "" });
      expect(told.stdout).toContain(
        "told the group that i-0123456789abcdef0 is unhealthy: it will be replaced",
      );
      expect(Object.fromEntries(new URLSearchParams(autoscaling.seen[0]!.body))).toEqual({
        Action: "SetInstanceHealth",
        HealthStatus: "Unhealthy",
        InstanceId: "i-0123456789abcdef0",
        ShouldRespectGracePeriod: "true",
        Version: "2011-01-01",
      });
      expect(await Promise.all(checks)).toEqual([true]);
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

/**
 * Azure as a node and a master see it: IMDS (plain http, as at 169.254.169.254), Resource Manager and Key
 * Vault as strict fakes (https, every request checked against Azure's API descriptions). Microsoft's PKI is
 * played by a root and an issuing CA made here; IMDS signs attested documents as Azure does (a PKCS#7 message,
 * DER, base64, that carries the signer's certificate only).
 */
const azure = {
  subscription: "8c1f0c1e-5d2a-4c8b-9a57-3f1e2d4c6b7a",
  group: "kubebake-demo",
  client: "0f4e7c2a-1b3d-4e5f-8a9b-c0d1e2f3a4b5",
  armToken: "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.arm-master.sig",
  vaultToken: "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.vault-master.sig",
  pki: join(work, "azure-pki"),
};
const azureSetId = (set: string) =>
  `/subscriptions/${azure.subscription}/resourceGroups/${azure.group}/providers/Microsoft.Compute/virtualMachineScaleSets/${set}`;

interface AzureVm {
  name: string;
  vmId: string;
  set: string;
  computerName: string;
  ip: string;
  state?: string;
}
/** The group's VMs by node name: members of demo's scale sets, and of another cluster's. */
const azureVms: Record<string, AzureVm> = {
  "demo-masters000001": {
    name: "kubebake-demo-masters_5d1c2b3a",
    vmId: "11111111-2222-4333-8444-555555555501",
    set: "kubebake-demo-masters",
    computerName: "demo-masters000001",
    ip: "10.1.0.4",
  },
  "demo-minions000003": {
    name: "kubebake-demo-minions_9e8f7a6b",
    vmId: "11111111-2222-4333-8444-555555555503",
    set: "kubebake-demo-minions",
    computerName: "Demo-Minions000003",
    ip: "10.1.0.6",
  },
  "demo-minions000004": {
    name: "kubebake-demo-minions_0a1b2c3d",
    vmId: "11111111-2222-4333-8444-555555555504",
    set: "kubebake-demo-minions",
    computerName: "demo-minions000004",
    ip: "10.1.0.7",
  },
  "demo-minions000005": {
    name: "kubebake-demo-minions_4e5f6a7b",
    vmId: "11111111-2222-4333-8444-555555555505",
    set: "kubebake-demo-minions",
    computerName: "demo-minions000005",
    ip: "10.1.0.8",
    state: "Deleting",
  },
  "other-minions000001": {
    name: "kubebake-other-minions_8c9d0e1f",
    vmId: "11111111-2222-4333-8444-555555555599",
    set: "kubebake-other-minions",
    computerName: "other-minions000001",
    ip: "10.1.0.9",
  },
};
const azureNicId = (vm: AzureVm) =>
  `/subscriptions/${azure.subscription}/resourceGroups/${azure.group}/providers/Microsoft.Network/networkInterfaces/${vm.name}-nic`;

/** A VM as VirtualMachines_List gives it (Compute 2024-07-01). */
const azureVmView = (vm: AzureVm) => ({
  id: `/subscriptions/${azure.subscription}/resourceGroups/${azure.group}/providers/Microsoft.Compute/virtualMachines/${vm.name}`,
  name: vm.name,
  type: "Microsoft.Compute/virtualMachines",
  location: "westeurope",
  properties: {
    vmId: vm.vmId,
    provisioningState: vm.state ?? "Succeeded",
    virtualMachineScaleSet: { id: azureSetId(vm.set) },
    osProfile: { computerName: vm.computerName, adminUsername: "kubebake" },
    networkProfile: { networkInterfaces: [{ id: azureNicId(vm), properties: { primary: true } }] },
  },
});

/** Azure's time format in attested documents: "MM/DD/YY hh:mm:ss -0000". */
function azureTime(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(date.getUTCMonth() + 1)}/${p(date.getUTCDate())}/${p(date.getUTCFullYear() % 100)} ${p(date.getUTCHours())}:${p(date.getUTCMinutes())}:${p(date.getUTCSeconds())} -0000`;
}

/** The PKCS#7 message (base64 DER) of `document` signed by `signer` (a key and certificate in the PKI folder). */
function azureSign(signer: string, document: object): string {
  const signed = spawnSync(
    "openssl",
    [
      ...[
        "cms",
        "-sign",
        "-signer",
        join(azure.pki, `${signer}.crt`),
        "-inkey",
        join(azure.pki, `${signer}.key`),
      ],
      ...["-outform", "DER", "-nodetach", "-binary", "-md", "sha256"],
    ],
    { input: JSON.stringify(document) },
  );
  if (signed.status !== 0) throw new Error(`openssl cms -sign: ${signed.stderr}`);
  return signed.stdout.toString("base64");
}

/** A CA certificate and key in the PKI folder: self-signed, or issued by `issuer` (naming its address `aia`). */
function azureCa(name: string, subject: string, issuer?: string, aia?: string) {
  if (!issuer) {
    openssl(
      [
        ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
        ...["-days", "2", "-subj", subject, "-keyout", `${name}.key`, "-out", `${name}.crt`],
      ],
      azure.pki,
    );
    return;
  }
  signCertificate(azure.pki, name, { subject, ca: issuer, aia, isCa: true });
}

/** Microsoft's PKI, played here: what a master trusts, IMDS's signer, and impostors. */
function makeAzurePki() {
  mkdirSync(azure.pki, { recursive: true });
  azureCa("root", "/CN=Test Azure Root");
  azureCa("issuing", "/CN=Test Azure RSA TLS Issuing CA 01", "root");
  const sans = "DNS:westeurope.metadata.azure.com,DNS:metadata.azure.com";
  signCertificate(azure.pki, "imds", {
    subject: "/CN=metadata.azure.com",
    ca: "issuing",
    usage: "serverAuth",
    sans,
  });
  // A certificate from the same CA for another name.
  signCertificate(azure.pki, "impostor", {
    subject: "/CN=metadata.azure.example",
    ca: "issuing",
    usage: "serverAuth",
    sans: "DNS:metadata.azure.example",
  });
  // The right name, from a CA nobody trusts.
  azureCa("rogue-root", "/CN=Rogue Root");
  signCertificate(azure.pki, "rogue", {
    subject: "/CN=metadata.azure.com",
    ca: "rogue-root",
    usage: "serverAuth",
    sans,
  });
}

/** What IMDS answers: the VM it runs for, and how it signs that VM's attested documents. */
interface AzureImdsState {
  asVm: string;
  signer: string;
  subscription: string;
  expiresIn: number;
  /** Answers this many attested documents from IMDS's "cache": signed for another nonce. */
  cachedAnswers: number;
}

async function azureImds(state: AzureImdsState) {
  return fake((req) => {
    if (req.headers.metadata !== "true")
      return { status: 400, body: '{"error":"Required metadata header not specified"}' };
    const url = new URL(req.url!, "http://169.254.169.254");
    const vm = azureVms[state.asVm]!;
    if (url.pathname === "/metadata/attested/document") {
      const nonce = url.searchParams.get("nonce") ?? "";
      // IMDS's API description: up to 32 alphanumeric characters.
      if (url.searchParams.get("api-version") !== "2020-09-01" || !/^[A-Za-z0-9]{1,32}$/.test(nonce))
        return { status: 400, body: '{"error":"Bad request"}' };
      const now = Date.now();
      const document = {
        nonce: state.cachedAnswers-- > 0 ? "20261130-211924" : nonce,
        plan: { name: "", product: "", publisher: "" },
        sku: "",
        subscriptionId: state.subscription,
        timeStamp: {
          createdOn: azureTime(new Date(now - 5_000)),
          expiresOn: azureTime(new Date(now + state.expiresIn * 1000)),
        },
        vmId: vm.vmId,
      };
      return { body: JSON.stringify({ encoding: "pkcs7", signature: azureSign(state.signer, document) }) };
    }
    if (url.pathname === "/metadata/identity/oauth2/token") {
      if (
        url.searchParams.get("client_id") !== azure.client ||
        url.searchParams.get("api-version") !== "2018-02-01"
      )
        return { status: 400, body: '{"error":"invalid_request"}' };
      const token = {
        "https://management.azure.com/": azure.armToken,
        "https://vault.azure.net": azure.vaultToken,
      }[url.searchParams.get("resource") ?? ""];
      return token ? { body: JSON.stringify({ access_token: token, token_type: "Bearer" }) } : undefined;
    }
    if (req.url === "/metadata/instance?api-version=2021-02-01")
      return {
        body: JSON.stringify({ compute: { vmId: vm.vmId, osProfile: { computerName: vm.computerName } } }),
      };
    return undefined;
  });
}

/** Resource Manager: the VMs of the group (listed by scale set) and their network interfaces. */
async function azureArm() {
  const arm = await ArmFake.start([
    ...VMSS_SPECS,
    "network/resource-manager/Microsoft.Network/stable/2024-05-01/networkInterface.json",
  ]);
  const health = { failures: 0 };
  const refused = (request: ArmRequest) =>
    request.headers.authorization !== `Bearer ${azure.armToken}`
      ? armError(401, "InvalidAuthenticationToken", "The access token is invalid.")
      : request.params.subscriptionId !== azure.subscription ||
          request.params.resourceGroupName !== azure.group
        ? armError(403, "AuthorizationFailed", "The client does not have authorization over this scope.")
        : undefined;
  arm.on("VirtualMachines_List", (request) => {
    const refusal = refused(request);
    if (refusal) return refusal;
    if (health.failures > 0) {
      health.failures--;
      return armError(503, "ServiceUnavailable", "The service is temporarily unavailable.");
    }
    // The one filter Azure allows on this list: a scale set's members.
    const set = /^'virtualMachineScaleSet\/id' eq '([^']+)'$/.exec(request.query.get("$filter") ?? "")?.[1];
    if (!set)
      return armError(
        400,
        "InvalidParameter",
        `The $filter '${request.query.get("$filter")}' is not supported.`,
      );
    const value = Object.values(azureVms).filter(
      (vm) => azureSetId(vm.set).toLowerCase() === set.toLowerCase(),
    );
    return { status: 200, body: { value: value.map(azureVmView) } };
  });
  arm.on("NetworkInterfaces_Get", (request) => {
    const refusal = refused(request);
    if (refusal) return refusal;
    const vm = Object.values(azureVms).find((v) => `${v.name}-nic` === request.params.networkInterfaceName);
    if (!vm) return armError(404, "NotFound", `Resource ${request.params.networkInterfaceName} not found.`);
    return {
      status: 200,
      body: {
        id: azureNicId(vm),
        name: `${vm.name}-nic`,
        type: "Microsoft.Network/networkInterfaces",
        location: "westeurope",
        properties: {
          primary: true,
          ipConfigurations: [
            {
              id: `${azureNicId(vm)}/ipConfigurations/ipconfig1`,
              name: "ipconfig1",
              properties: { privateIPAddress: vm.ip, privateIPAllocationMethod: "Dynamic", primary: true },
            },
          ],
        },
      },
    };
  });
  return { arm, health };
}

/**
 * Microsoft's PKI as a master reaches it (the host its "CA Issuers" addresses name): the certificates in
 * `files` by path, DER or PEM (filled in once the port is known), each request counted in `asked`.
 */
async function azurePkiHost() {
  const files: Record<string, Buffer | string> = {};
  const asked: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    asked.push(req.url!);
    const file = files[req.url!];
    if (file === undefined) res.writeHead(404).end("not found");
    else res.writeHead(200, { "Content-Type": "application/pkix-cert" }).end(file);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const close = () => new Promise((resolve) => server.close(resolve));
  return { base: `http://127.0.0.1:${port}`, port, files, asked, close };
}

/** A port nothing listens on (a server's, closed). */
async function closedPort() {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The role file's Azure settings, the fakes' endpoints and the test PKI as a master's trust. */
function azureEnv(imds: string, arm: { endpoint: string; ca: string }) {
  const caBundle = join(work, "azure-fakes-ca.pem");
  writeFileSync(caBundle, arm.ca);
  return {
    CLUSTER_NAME: "demo",
    AZURE_CLIENT_ID: azure.client,
    AZURE_SUBSCRIPTION_ID: azure.subscription,
    AZURE_RESOURCE_GROUP: azure.group,
    AZURE_IMDS_ENDPOINT: imds,
    AZURE_ARM_ENDPOINT: arm.endpoint,
    AZURE_ATTESTED_CA_FILE: join(azure.pki, "root.crt"),
    AZURE_ATTESTED_INTERMEDIATES: join(azure.pki, "issuing.crt"),
    AZURE_ATTESTED_CACHE: join(work, "azure-attested-cache"),
    // curl trusts the fakes' https certificate.
    CURL_CA_BUNDLE: caBundle,
  };
}

describe("azure: a join proves the VM with its attested data", () => {
  const imdsState: AzureImdsState = {
    asVm: "demo-minions000003",
    signer: "imds",
    subscription: azure.subscription,
    expiresIn: 6 * 3600,
    cachedAnswers: 0,
  };
  const digest = "cd".repeat(32);
  beforeAll(makeAzurePki);
  afterEach(() => {
    Object.assign(imdsState, {
      asVm: "demo-minions000003",
      signer: "imds",
      subscription: azure.subscription,
      expiresIn: 6 * 3600,
      cachedAnswers: 0,
    });
  });

  async function world() {
    const imds = await azureImds(imdsState);
    const { arm, health } = await azureArm();
    const env = azureEnv(imds.base, arm);
    const close = async () => {
      await imds.close();
      await arm.stop();
    };
    return { env, imds, arm, health, close };
  }

  /** A proof made on the VM `imdsState.asVm` for `digest`, checked on a master for `node` and `checked`. */
  async function verdict(env: Record<string, string>, node: string, checked = digest) {
    const result = await provider(
      "azure",
      `proof=$(provider_join_proof ${digest}); provider_verify_join ${node} ${checked} "$proof"`,
      env,
    );
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: "" });
    return result.stdout.trim();
  }

  test("the VM's own name is approved, on the masters' and the minions' scale sets", async () => {
    const { env, imds, arm, close } = await world();
    try {
      const proof = await provider("azure", `provider_join_proof ${digest}`, env);
      expect(proof.status).toBe(0);
      expect(Object.keys(JSON.parse(proof.stdout))).toEqual(["attested-document"]);
      // The nonce: 32 hex digits of the request's digest bound to the cluster.
      const asked = new URL(imds.seen.find((s) => s.url.startsWith("/metadata/attested/"))!.url, "http://x");
      expect(asked.searchParams.get("nonce")).toMatch(/^[0-9a-f]{32}$/);
      expect(await verdict(env, "demo-minions000003")).toBe(
        `approve VM demo-minions000003 (${azureVms["demo-minions000003"]!.vmId}) of scale set kubebake-demo-minions signed the request with its attested data`,
      );
      imdsState.asVm = "demo-masters000001";
      expect(await verdict(env, "demo-masters000001")).toMatch(
        /^approve VM demo-masters000001 \(\S+\) of scale set kubebake-demo-masters /,
      );
      expect(arm.violations).toEqual([]);
    } finally {
      await close();
    }
  });

  test("every other claim is denied, saying why", async () => {
    const { env, arm, close } = await world();
    const minion = azureVms["demo-minions000003"]!;
    try {
      // This VM's document, for another VM's name.
      expect(await verdict(env, "demo-minions000004")).toBe(
        `deny the attested document is VM demo-minions000003's (${minion.vmId}), not node demo-minions000004's`,
      );
      // A document made for another request.
      expect(await verdict(env, "demo-minions000003", "ef".repeat(32))).toBe(
        "deny the attested document does not prove this request: it was made for another request or cluster",
      );
      // A document made in this cluster, checked by another's master.
      const proof = (await provider("azure", `provider_join_proof ${digest}`, env)).stdout;
      writeFileSync(join(work, "azure-proof.json"), proof);
      const elsewhere = await provider(
        "azure",
        `provider_verify_join demo-minions000003 ${digest} "$(cat ${join(work, "azure-proof.json")})"`,
        { ...env, CLUSTER_NAME: "other" },
      );
      expect(elsewhere.stdout.trim()).toBe(
        "deny the attested document does not prove this request: it was made for another request or cluster",
      );
      imdsState.subscription = "99999999-1111-4222-8333-444444444444";
      expect(await verdict(env, "demo-minions000003")).toBe(
        `deny the attested document does not prove this request: it is of subscription 99999999-1111-4222-8333-444444444444, not ${azure.subscription}`,
      );
      imdsState.subscription = azure.subscription;
      imdsState.expiresIn = -60;
      expect(await verdict(env, "demo-minions000003")).toBe(
        "deny the attested document does not prove this request: it has expired",
      );
      imdsState.expiresIn = 6 * 3600;
      imdsState.signer = "impostor";
      expect(await verdict(env, "demo-minions000003")).toBe(
        "deny the attested document is not Azure's: its signer's certificate is not for metadata.azure.com",
      );
      imdsState.signer = "rogue";
      expect(await verdict(env, "demo-minions000003")).toBe(
        "deny the attested document is not Azure's: its signer's certificate does not lead to a trusted CA (unable to get local issuer certificate)",
      );
      imdsState.signer = "imds";
      // Another cluster's VM, in its own name.
      imdsState.asVm = "other-minions000001";
      expect(await verdict(env, "other-minions000001")).toBe(
        `deny VM ${azureVms["other-minions000001"]!.vmId} is not a member of scale set kubebake-demo-masters or kubebake-demo-minions`,
      );
      imdsState.asVm = "demo-minions000005";
      expect(await verdict(env, "demo-minions000005")).toBe(
        `deny VM demo-minions000005 (${azureVms["demo-minions000005"]!.vmId}) is being deleted`,
      );
      // No proof at all (a kubelet's own request).
      const none = await provider("azure", `provider_verify_join demo-minions000003 ${digest} ""`, env);
      expect(none.stdout.trim()).toBe(
        "deny the request carries no proof of its machine (annotation kubebake.io/join-proof)",
      );
      const junk = await provider(
        "azure",
        `provider_verify_join demo-minions000003 ${digest} '{"identity-token":"x"}'`,
        env,
      );
      expect(junk.stdout.trim()).toBe("deny the proof is not the attested document of an Azure VM");
      expect(arm.violations).toEqual([]);
    } finally {
      await close();
    }
  });

  test("a document changed after signing is denied; without Microsoft's issuing CA none is approved", async () => {
    const { env, close } = await world();
    try {
      const proof = JSON.parse((await provider("azure", `provider_join_proof ${digest}`, env)).stdout) as {
        "attested-document": string;
      };
      // The same signature over a document that names another VM (same length: the message stays whole).
      const der = Buffer.from(proof["attested-document"], "base64");
      const own = Buffer.from(azureVms["demo-minions000003"]!.vmId);
      const at = der.indexOf(own);
      expect(at).toBeGreaterThan(0);
      Buffer.from(azureVms["demo-minions000004"]!.vmId).copy(der, at);
      const forged = join(work, "azure-forged-proof.json");
      writeFileSync(forged, JSON.stringify({ "attested-document": der.toString("base64") }));
      const changed = await provider(
        "azure",
        `provider_verify_join demo-minions000004 ${digest} "$(cat ${forged})"`,
        env,
      );
      expect(changed.stdout.trim()).toBe(
        "deny the attested document is not Azure's: it is not a signed PKCS#7 message whose signature matches its content",
      );
      // A master without the intermediates: the document carries only IMDS's own certificate.
      const alone = await verdict(
        { ...env, AZURE_ATTESTED_INTERMEDIATES: join(work, "no-such-intermediates.pem") },
        "demo-minions000003",
      );
      expect(alone).toBe(
        "deny the attested document is not Azure's: its signer's certificate does not lead to a trusted CA (unable to get local issuer certificate)",
      );
    } finally {
      await close();
    }
  });

  describe('without the intermediates file, the issuer comes from the signer\'s "CA Issuers" address', () => {
    /** A signer for metadata.azure.com issued by `ca`, naming its issuer's address `aia`. */
    const aiaSigner = (name: string, ca: string, aia: string) =>
      signCertificate(azure.pki, name, {
        subject: "/CN=metadata.azure.com",
        ca,
        usage: "serverAuth",
        sans: "DNS:westeurope.metadata.azure.com,DNS:metadata.azure.com",
        aia,
      });
    const pem = (name: string) => readFileSync(join(azure.pki, `${name}.crt`), "utf8");
    const der = (name: string) => new X509Certificate(pem(name)).raw;
    const issuing = "/pkiops/certs/Test%20Azure%20RSA%20TLS%20Issuing%20CA%2001.crt";
    let cases = 0;

    /** The world, a PKI host, and a master's settings: no intermediates, a cache of its own, that host allowed. */
    async function aiaWorld() {
      const w = await world();
      const pki = await azurePkiHost();
      const cache = join(work, `azure-attested-${++cases}`);
      const env = {
        ...w.env,
        AZURE_ATTESTED_INTERMEDIATES: join(work, "no-such-intermediates.pem"),
        AZURE_ATTESTED_AIA_HOSTS: `www.microsoft.com 127.0.0.1:${pki.port}`,
        AZURE_ATTESTED_CACHE: cache,
      };
      const close = async () => {
        await pki.close();
        await w.close();
      };
      return { env, pki, cache, close };
    }

    /** A proof made on demo-minions000003 with `imdsState.signer`, checked on a master: the verdict and its log. */
    async function check(env: Record<string, string>) {
      const result = await provider(
        "azure",
        `proof=$(provider_join_proof ${digest}); provider_verify_join demo-minions000003 ${digest} "$proof"`,
        env,
      );
      expect(result.status).toBe(0);
      return { verdict: result.stdout.trim(), log: result.stderr };
    }

    test("it is fetched once and kept; the join is approved", async () => {
      const { env, pki, cache, close } = await aiaWorld();
      try {
        const url = `${pki.base}${issuing}`;
        aiaSigner("imds-aia", "issuing", url);
        imdsState.signer = "imds-aia";
        // As Microsoft serves its CAs: DER.
        pki.files[issuing] = der("issuing");
        const first = await check(env);
        expect(first.verdict).toBe(
          `approve VM demo-minions000003 (${azureVms["demo-minions000003"]!.vmId}) of scale set kubebake-demo-minions signed the request with its attested data`,
        );
        // Kept as PEM, named by the SHA-256 of its address, readable by root only.
        const kept = join(cache, `${createHash("sha256").update(url).digest("hex")}.pem`);
        expect(first.log).toContain(`from ${url} into ${kept}`);
        expect(new X509Certificate(readFileSync(kept, "utf8")).fingerprint256).toBe(
          new X509Certificate(pem("issuing")).fingerprint256,
        );
        expect(statSync(cache).mode & 0o777).toBe(0o700);
        expect(statSync(kept).mode & 0o777).toBe(0o600);
        // The next request is checked with the kept issuer: nothing fetched, nothing logged.
        expect(await check(env)).toEqual({ verdict: first.verdict, log: "" });
        expect(pki.asked).toEqual([issuing]);
      } finally {
        await close();
      }
    });

    test("an address on a host not of Microsoft's PKI is never asked: denied", async () => {
      const { env, pki, cache, close } = await aiaWorld();
      try {
        // The same server by another name: not on the list.
        const url = `http://localhost:${pki.port}${issuing}`;
        aiaSigner("imds-aia-elsewhere", "issuing", url);
        imdsState.signer = "imds-aia-elsewhere";
        pki.files[issuing] = der("issuing");
        expect(await check(env)).toEqual({
          verdict: `deny the attested document is not Azure's: its signer's certificate does not lead to a trusted CA (unable to get local issuer certificate), and its issuer's address ${url} is not on a host of Microsoft's PKI`,
          log: "",
        });
        expect(pki.asked).toEqual([]);
        expect(existsSync(cache)).toBe(false);
      } finally {
        await close();
      }
    });

    test("Microsoft's PKI out of reach is a wait, not a verdict", async () => {
      const { env, cache, close } = await aiaWorld();
      try {
        const url = `http://127.0.0.1:${await closedPort()}${issuing}`;
        aiaSigner("imds-aia-down", "issuing", url);
        imdsState.signer = "imds-aia-down";
        const { verdict, log } = await check({
          ...env,
          AZURE_ATTESTED_AIA_HOSTS: "127.0.0.1:*",
          KUBEBAKE_API_DEADLINE_SECONDS: "1",
        });
        expect(verdict).toBe(
          `wait the attested document cannot be checked yet: the issuer of its signer's certificate could not be fetched from ${url}`,
        );
        expect(log).toMatch(
          new RegExp(`CA issuer of attested documents ${url}: gave up after \\d+ attempts`),
        );
        expect(readdirSync(cache)).toEqual([]);
      } finally {
        await close();
      }
    });

    test("what the address gives is never trusted by itself: a chain to another root is denied", async () => {
      const { env, pki, cache, close } = await aiaWorld();
      try {
        // A rogue CA with the issuing CA's name, whose own address gives its root (PEM): both on the host.
        azureCa(
          "rogue-issuing",
          "/CN=Test Azure RSA TLS Issuing CA 01",
          "rogue-root",
          `${pki.base}/rogue-root.pem`,
        );
        aiaSigner("rogue-aia", "rogue-issuing", `${pki.base}/rogue-issuing.crt`);
        pki.files["/rogue-issuing.crt"] = der("rogue-issuing");
        pki.files["/rogue-root.pem"] = pem("rogue-root");
        imdsState.signer = "rogue-aia";
        const rogue = await check(env);
        expect(rogue.verdict).toMatch(
          /^deny the attested document is not Azure's: its signer's certificate does not lead to a trusted CA \(self.signed certificate in certificate chain\), with the issuers its "CA Issuers" addresses gave$/,
        );
        expect(pki.asked).toEqual(["/rogue-issuing.crt", "/rogue-root.pem"]);
        // Azure's own signer, whose address gives another CA's certificate.
        aiaSigner("imds-aia-wrong", "issuing", `${pki.base}/other.crt`);
        pki.files["/other.crt"] = der("rogue-root");
        imdsState.signer = "imds-aia-wrong";
        expect((await check(env)).verdict).toBe(
          `deny the attested document is not Azure's: its signer's certificate does not lead to a trusted CA (unable to get local issuer certificate), with the issuers its "CA Issuers" addresses gave`,
        );
        expect(readdirSync(cache).length).toBe(3);
      } finally {
        await close();
      }
    });
  });

  test("a document IMDS answers from its cache (another nonce) is asked for again", async () => {
    const { env, imds, close } = await world();
    imdsState.cachedAnswers = 1;
    try {
      const result = await provider(
        "azure",
        `proof=$(provider_join_proof ${digest}); provider_verify_join demo-minions000003 ${digest} "$proof"`,
        env,
      );
      expect(result.stdout).toMatch(/^approve VM demo-minions000003 /);
      expect(result.stderr).toMatch(
        /Azure IMDS attested document: attempt 1 failed: IMDS signed the nonce '20261130-211924', not [0-9a-f]{32}; trying again/,
      );
      expect(imds.seen.filter((s) => s.url.startsWith("/metadata/attested/")).length).toBe(2);
    } finally {
      await close();
    }
  });

  test("Resource Manager failing is a wait, not a verdict", async () => {
    const { env, health, close } = await world();
    try {
      const proof = (await provider("azure", `provider_join_proof ${digest}`, env)).stdout;
      writeFileSync(join(work, "azure-proof.json"), proof);
      health.failures = 1000;
      const result = await provider(
        "azure",
        `provider_verify_join demo-minions000003 ${digest} "$(cat ${join(work, "azure-proof.json")})"`,
        { ...env, KUBEBAKE_API_DEADLINE_SECONDS: "1" },
      );
      expect(result.stdout.trim()).toBe(
        "wait Resource Manager did not list the VMs of scale set kubebake-demo-masters (HTTP 503)",
      );
      expect(result.stderr).toContain("attempt 1 failed: HTTP 503 The service is temporarily unavailable.");
    } finally {
      await close();
    }
  });

  test("a serving certificate's names are checked against the addresses Resource Manager gives the cluster's VM", async () => {
    const { env, arm, close } = await world();
    try {
      expect((await provider("azure", "provider_has_address_record && echo yes", env)).stdout).toBe("yes\n");
      const own = await provider("azure", "provider_node_addresses demo-minions000003", env);
      expect({ stdout: own.stdout, stderr: own.stderr }).toEqual({
        stdout: "IP:10.1.0.6\nDNS:demo-minions000003\n",
        stderr: "",
      });
      // Another cluster's VM is not this cluster's record of anything.
      const other = await provider("azure", "provider_node_addresses other-minions000001", env);
      expect({ stdout: other.stdout, status: other.status }).toEqual({ stdout: "", status: 0 });
      expect(arm.violations).toEqual([]);
    } finally {
      await close();
    }
  });

  test("every page of a scale set's members is read, on Resource Manager's host only", async () => {
    const imds = await azureImds(imdsState);
    const minion = azureVms["demo-minions000004"]!;
    const arm = await fake((req) => {
      if (req.headers.authorization !== `Bearer ${azure.armToken}`) return { status: 401, body: "" };
      const url = new URL(req.url!, "http://arm");
      if (url.pathname.endsWith("/providers/Microsoft.Compute/virtualMachines")) {
        const minions = (url.searchParams.get("$filter") ?? "").includes("kubebake-demo-minions");
        // Its next link names Azure's host, as ARM's do; the page is asked of this one.
        if (minions && url.searchParams.get("$skiptoken") === null)
          return {
            body: JSON.stringify({
              value: [],
              nextLink: `https://management.azure.com${url.pathname}${url.search}&$skiptoken=page2`,
            }),
          };
        return { body: JSON.stringify({ value: minions ? [azureVmView(minion)] : [] }) };
      }
      if (url.pathname === azureNicId(minion))
        return {
          body: JSON.stringify({
            properties: { ipConfigurations: [{ properties: { privateIPAddress: minion.ip } }] },
          }),
        };
      return undefined;
    });
    try {
      const found = await provider("azure", "provider_node_addresses demo-minions000004", {
        ...azureEnv(imds.base, { endpoint: arm.base, ca: localCertificate().cert }),
      });
      expect({ stdout: found.stdout, stderr: found.stderr }).toEqual({
        stdout: "IP:10.1.0.7\nDNS:demo-minions000004\n",
        stderr: "",
      });
      expect(arm.seen.filter((s) => s.url.includes("skiptoken=page2")).length).toBe(1);
    } finally {
      await imds.close();
      await arm.close();
    }
  });
});

describe("azure: masters publish the join token to Key Vault and open the launch gate there", () => {
  const imdsState: AzureImdsState = {
    asVm: "demo-masters000001",
    signer: "imds",
    subscription: azure.subscription,
    expiresIn: 6 * 3600,
    cachedAnswers: 0,
  };
  const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
  beforeAll(makeAzurePki);
  afterEach(() => {
    imdsState.asVm = "demo-masters000001";
  });

  /** IMDS, and a vault with Azure RBAC: the masters' identity is Secrets Officer on the two secrets it writes. */
  async function world() {
    const imds = await azureImds(imdsState);
    const management = await ArmFake.start(KEYVAULT_SPECS);
    const keyVault = installKeyVault(management);
    keyVault.authorize = ({ token, scope }) =>
      token === azure.vaultToken && /\/secrets\/(pki-bootstrap-token|launch-ready)$/.test(scope);
    const created = await call(
      management.endpoint,
      management.ca,
      "PUT",
      `/subscriptions/${azure.subscription}/resourceGroups/${azure.group}/providers/Microsoft.KeyVault/vaults/kbdemo-pki?api-version=2023-07-01`,
      {
        location: "westeurope",
        properties: {
          tenantId: tenant,
          sku: { family: "A", name: "standard" },
          enableRbacAuthorization: true,
          softDeleteRetentionInDays: 7,
        },
      },
    );
    expect(created.status).toBe(201);
    const vaultUri = (created.body as { properties: { vaultUri: string } }).properties.vaultUri;
    const env = {
      ...azureEnv(imds.base, management),
      AZURE_KEYVAULT_ENDPOINT: vaultUri,
      SECRET_SOURCE: "keyvault:kbdemo-pki/pki",
      LAUNCH_HOOK: "launch-ready",
    };
    const secret = (name: string) => keyVault.vaults.get("kbdemo-pki")?.secrets.get(name);
    const close = async () => {
      await imds.close();
      await keyVault.stop();
      await management.stop();
    };
    return { env, management, keyVault, secret, vaultUri, close };
  }

  test("each token is the newest version and the only enabled one, as the masters' role allows", async () => {
    const { env, management, secret, close } = await world();
    try {
      expect((await provider("azure", "provider_can_publish_secret && echo yes", env)).stdout).toBe("yes\n");
      const file = join(work, "azure-minted-token");
      for (const token of ["abcdef.0123456789abcdef", "ghijkl.fedcba9876543210"]) {
        writeFileSync(file, token);
        const published = await provider("azure", `provider_publish_secret bootstrap-token ${file}`, env);
        expect({ status: published.status, stderr: published.stderr }).toEqual({ status: 0, stderr: "" });
        // The next token comes later (Key Vault's creation times are in seconds).
        for (const version of secret("pki-bootstrap-token")!.versions) version.created -= 10;
      }
      expect(secret("pki-bootstrap-token")!.versions.map((v) => [v.value, v.enabled])).toEqual([
        ["abcdef.0123456789abcdef", false],
        ["ghijkl.fedcba9876543210", true],
      ]);
      // What nodes read is the newest.
      const dest = join(work, "azure-published-token");
      const fetched = await provider("azure", `provider_fetch_secret bootstrap-token ${dest}`, env);
      expect(fetched.status).toBe(0);
      expect(readFileSync(dest, "utf8")).toBe("ghijkl.fedcba9876543210");
      expect(management.violations).toEqual([]);
    } finally {
      await close();
    }
  });

  test("a version another master made after this one's stays enabled", async () => {
    const { env, secret, vaultUri, management, close } = await world();
    try {
      const file = join(work, "azure-minted-token");
      writeFileSync(file, "abcdef.0123456789abcdef");
      expect((await provider("azure", `provider_publish_secret bootstrap-token ${file}`, env)).status).toBe(
        0,
      );
      secret("pki-bootstrap-token")!.versions[0]!.created -= 10;
      // Another master's token, made while this master publishes its own: later than this one's.
      const other = await call(
        vaultUri.replace(/\/$/, ""),
        management.ca,
        "PUT",
        "/secrets/pki-bootstrap-token?api-version=7.5",
        {
          value: "mnopqr.0123456789abcdef",
        },
        { Authorization: `Bearer ${azure.vaultToken}` },
      );
      expect(other.status).toBe(200);
      secret("pki-bootstrap-token")!.versions[1]!.created += 100;
      writeFileSync(file, "ghijkl.fedcba9876543210");
      expect((await provider("azure", `provider_publish_secret bootstrap-token ${file}`, env)).status).toBe(
        0,
      );
      expect(secret("pki-bootstrap-token")!.versions.map((v) => [v.value, v.enabled])).toEqual([
        ["abcdef.0123456789abcdef", false],
        ["mnopqr.0123456789abcdef", true],
        ["ghijkl.fedcba9876543210", true],
      ]);
    } finally {
      await close();
    }
  });

  test("a master that votes and serves adds a version of the launch gate's secret, tagged with its vmId", async () => {
    const { env, management, secret, vaultUri, close } = await world();
    try {
      const told = await provider("azure", "provider_instance_ready", env);
      expect({ status: told.status, stderr: told.stderr }).toEqual({ status: 0, stderr: "" });
      const vmId = azureVms["demo-masters000001"]!.vmId;
      expect(told.stdout).toContain(
        `told the rollout this master is ready (Key Vault secret launch-ready, tag vmId=${vmId})`,
      );
      expect(secret("launch-ready")!.versions.map((v) => [v.value, v.tags, v.enabled])).toEqual([
        ["ready", { vmId }, true],
      ]);
      // The launcher reads the tags from the version list.
      const listed = await call(
        vaultUri.replace(/\/$/, ""),
        management.ca,
        "GET",
        "/secrets/launch-ready/versions?api-version=7.5",
        undefined,
        {
          Authorization: `Bearer ${azure.vaultToken}`,
        },
      );
      expect((listed.body as { value: { tags: unknown }[] }).value.map((v) => v.tags)).toEqual([{ vmId }]);
      const unnamed = await provider("azure", "provider_instance_ready", { ...env, LAUNCH_HOOK: "" });
      expect(unnamed.status).not.toBe(0);
      expect(unnamed.stderr).toContain("LAUNCH_HOOK is not set in the role file");
      expect(management.violations).toEqual([]);
    } finally {
      await close();
    }
  });

  test("an unhealthy master is logged, saying why nothing replaces it", async () => {
    const told = await provider("azure", "provider_instance_unhealthy", {});
    expect({ status: told.status, stderr: told.stderr }).toEqual({ status: 0, stderr: "" });
    expect(told.stdout).toContain("the masters may not delete VMs; the next 'kubebake cluster apply'");
  });

  test("no token, no join token and no signature reach a command line", async () => {
    const { env, close } = await world();
    const { arm } = await azureArm();
    const shims = argvShims(join(work, "argv-azure"));
    try {
      const file = join(work, "azure-argv-token");
      writeFileSync(file, "abcdef.0123456789abcdef");
      const digest = "ab".repeat(32);
      imdsState.asVm = "demo-minions000003";
      const run = { ...env, ...shims.env, AZURE_ARM_ENDPOINT: arm.endpoint };
      const calls = [
        `proof=$(provider_join_proof ${digest}); provider_verify_join demo-minions000003 ${digest} "$proof" >${join(work, "azure-argv-verdict")}`,
        "provider_node_addresses demo-minions000003 >/dev/null",
        `provider_publish_secret bootstrap-token ${file}`,
        `provider_fetch_secret bootstrap-token ${join(work, "azure-argv-fetched")}`,
        "provider_instance_ready >/dev/null",
      ];
      for (const line of calls) {
        const result = await provider("azure", line, run);
        expect({ line, status: result.status, stderr: result.stderr }).toEqual({
          line,
          status: 0,
          stderr: "",
        });
      }
      expect(readFileSync(join(work, "azure-argv-verdict"), "utf8")).toMatch(
        /^approve VM demo-minions000003 /,
      );
      expect(readFileSync(join(work, "azure-argv-fetched"), "utf8")).toBe("abcdef.0123456789abcdef");
      const lines = shims.lines();
      expect(lines.filter((l) => l.startsWith("curl ")).length).toBeGreaterThanOrEqual(12);
      expect(lines.some((l) => l.startsWith("openssl verify "))).toBe(true);
      expect(lines.filter((l) => /eyJ0eXAi|bearer|0123456789abcdef/i.test(l))).toEqual([]);
    } finally {
      await arm.stop();
      await close();
    }
  });
});

/**
 * Every program the node scripts run, shimmed on PATH: the shim appends its whole argv (unit-separated, one
 * record per line) to a log, then execs the real program. Anything in an argv is public to every local user
 * (/proc/<pid>/cmdline), so no secret may show up in that log.
 */
function argvShims(dir: string) {
  const programs = [
    "curl",
    "openssl",
    "jq",
    "od",
    "xxd",
    "tr",
    "sed",
    "grep",
    "head",
    "tail",
    "cut",
    "paste",
    "sort",
    "date",
    "mktemp",
    "rm",
    "cat",
    "sleep",
    "base64",
    "awk",
    "mv",
    "chmod",
    "stat",
    "printf",
    "echo",
  ];
  const shims = join(dir, "shims");
  const log = join(dir, "argv.log");
  mkdirSync(shims, { recursive: true });
  writeFileSync(log, "");
  let shimmed = 0;
  for (const program of programs) {
    const real = spawnSync("bash", ["-c", `type -P ${program}`], { encoding: "utf8" }).stdout.trim();
    if (!real) continue;
    const shim = join(shims, program);
    writeFileSync(
      shim,
      // One write per record (O_APPEND): the programs of a pipeline log at the same time.
      `#!/bin/bash\nprintf -v record '%s\\x1f' ${program} "$@"\nprintf '%s\\n' "$record" >>"$KUBEBAKE_TEST_ARGV_LOG"\nexec ${real} "$@"\n`,
    );
    chmodSync(shim, 0o755);
    shimmed++;
  }
  expect(shimmed).toBeGreaterThan(10);
  return {
    env: { PATH: `${shims}:${process.env.PATH}`, KUBEBAKE_TEST_ARGV_LOG: log },
    /** Every recorded command line, its arguments joined with spaces. */
    lines: () =>
      readFileSync(log, "utf8")
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => l.split("\x1f").join(" ")),
  };
}

/** SigV4's signing keys for a date, region and service, and the HMAC pads of each, as hex (RFC 2104). */
function derivedKeys(secretKey: string, date: string, region: string, service: string): string[] {
  const hmac = (key: Buffer, data: string) => createHmac("sha256", key).update(data).digest();
  const first = Buffer.from(`AWS4${secretKey}`);
  const kDate = hmac(first, date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  const kSigning = hmac(kService, "aws4_request");
  const pads = (key: Buffer) =>
    [0x36, 0x5c].map((pad) => {
      const block = Buffer.alloc(64);
      key.copy(block);
      return Buffer.from(block.map((b) => b ^ pad)).toString("hex");
    });
  return [first, kDate, kRegion, kService, kSigning].flatMap((k) => [k.toString("hex"), ...pads(k)]);
}

describe("aws: no secret on any command line", () => {
  const imdsToken = "AQAEAFakeImdsToken-7f3a9c0d2e==";
  const creds = {
    AccessKeyId: keys.AWS_ACCESS_KEY_ID,
    SecretAccessKey: keys.AWS_SECRET_ACCESS_KEY,
    Token: "FwoGZXIvYXdzEFakeSessionToken//+=",
  };

  test("the SSM fetch, S3 put and get, CompleteLifecycleAction and a join proof made and checked pass the IMDS token, the keys, the session token and the signatures by file descriptor only", async () => {
    const dir = join(work, "argv");
    const shims = argvShims(dir);
    const imds = await fake((req) => {
      if (req.method === "PUT" && req.url === "/latest/api/token") return { body: imdsToken };
      if (req.headers["x-aws-ec2-metadata-token"] !== imdsToken) return { status: 401, body: "" };
      const answers: Record<string, string> = {
        "/latest/meta-data/placement/region": keys.AWS_REGION,
        "/latest/meta-data/instance-id": "i-0123456789abcdef0",
        "/latest/meta-data/iam/security-credentials/": "kubebake-demo-masters",
        "/latest/meta-data/iam/security-credentials/kubebake-demo-masters": JSON.stringify(creds),
      };
      return answers[req.url!] !== undefined ? { body: answers[req.url!]! } : undefined;
    });
    const checks: Promise<boolean>[] = [];
    const dates = new Set<string>();
    const signed = (service: string) => (req: IncomingMessage, body: string) => {
      dates.add(String(req.headers["x-amz-date"]).slice(0, 8));
      checks.push(sdkSignatureWith(req, body, service, creds).then((e) => e === req.headers.authorization));
    };
    const ssm = await fake((req, body) => {
      signed("ssm")(req, body);
      if (req.headers["x-amz-security-token"] !== creds.Token) return { status: 403, body: "{}" };
      return { body: JSON.stringify({ Parameter: { Value: "PEM\n" } }) };
    });
    const objects = new Map<string, string>();
    const s3 = await fake((req, body) => {
      signed("s3")(req, body);
      if (req.method === "PUT") {
        objects.set(req.url!, body);
        return { body: "" };
      }
      const object = objects.get(req.url!);
      return object === undefined ? undefined : { body: object, headers: { "x-amz-meta-sha256": "x" } };
    });
    const autoscaling = await fake((req, body) => {
      signed("autoscaling")(req, body);
      return { body: "<CompleteLifecycleActionResponse/>" };
    });
    // A join proof made here, and checked as a master checks it: STS (a strict model) and EC2.
    const instance = "i-0123456789abcdef0";
    const role = "arn:aws:sts::123456789012:assumed-role/kubebake-demo-eu-west-1-masters";
    const sts = await startFakeSts(
      [
        {
          accessKeyId: creds.AccessKeyId,
          secretAccessKey: creds.SecretAccessKey,
          sessionToken: creds.Token,
          arn: `${role}/${instance}`,
        },
      ],
      keys.AWS_REGION,
    );
    const ec2 = await fake((req, body) => {
      signed("ec2")(req, body);
      return {
        body: `<DescribeInstancesResponse><instanceId>${instance}</instanceId></DescribeInstancesResponse>`,
      };
    });
    const env = {
      ...shims.env,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.base,
      AWS_ENDPOINT_URL_SSM: ssm.base,
      AWS_ENDPOINT_URL_S3: s3.base,
      AWS_ENDPOINT_URL_AUTO_SCALING: autoscaling.base,
      AWS_ENDPOINT_URL_STS: sts.endpoint,
      AWS_ENDPOINT_URL_EC2: ec2.base,
      CLUSTER_NAME: "demo",
      JOIN_IDENTITIES: role,
      SECRET_SOURCE: "ssm:/kubebake/demo",
      SNAPSHOT_STORE: "s3://kb-bucket/demo/etcd",
      GROUP_NAME: "kubebake-demo-masters",
      LAUNCH_HOOK: "kubebake-etcd-voter",
    };
    try {
      const file = join(dir, "snapshot.db");
      writeFileSync(file, "etcd snapshot bytes\n");
      const calls = [
        `provider_fetch_secret ca.key ${join(dir, "ca.key")}`,
        `. ${join(nodeDir, "s3.sh")}; store_put ${file} 20261201T010000Z-r7.db`,
        `. ${join(nodeDir, "s3.sh")}; store_get 20261201T010000Z-r7.db ${join(dir, "restored.db")}`,
        "provider_instance_ready",
        `proof=$(provider_join_proof ${"ab".repeat(32)}); provider_verify_join ip-10-0-1-7.eu-west-1.compute.internal ${"ab".repeat(32)} "$proof" >${join(dir, "verdict")}`,
      ];
      for (const call of calls) {
        const result = await provider("aws", call, env);
        expect({ call, status: result.status, stderr: result.stderr }).toEqual({
          call,
          status: 0,
          stderr: "",
        });
      }
      expect(readFileSync(join(dir, "ca.key"), "utf8")).toBe("PEM\n");
      expect(readFileSync(join(dir, "restored.db"), "utf8")).toBe("etcd snapshot bytes\n");
      expect(readFileSync(join(dir, "verdict"), "utf8")).toBe(
        `approve ${instance} of this cluster, whose private DNS name is ip-10-0-1-7.eu-west-1.compute.internal, signed the request\n`,
      );
      expect(sts.answers).toEqual([`ok ${role}/${instance}`]);
      const results = await Promise.all(checks);
      expect(results.length).toBe(5);
      expect(results.every(Boolean)).toBe(true);

      const lines = shims.lines();
      // The shims saw the work: curl for every request, openssl for the digests.
      expect(lines.filter((l) => l.startsWith("curl ")).length).toBeGreaterThanOrEqual(4);
      expect(lines.some((l) => l.startsWith("openssl "))).toBe(true);
      const secrets = [
        creds.SecretAccessKey,
        creds.Token,
        imdsToken,
        ...[...dates].flatMap((date) =>
          ["ssm", "s3", "autoscaling", "sts", "ec2"].flatMap((service) =>
            derivedKeys(creds.SecretAccessKey, date, keys.AWS_REGION, service),
          ),
        ),
      ];
      const leaks = lines.filter((line) =>
        secrets.some((s) => line.includes(s) || line.toLowerCase().includes(s.toLowerCase())),
      );
      expect(leaks).toEqual([]);
      // Nor the signatures (as headers or values): each one authorizes its request for minutes.
      expect(lines.filter((l) => /authorization:|signature=|x-amz-security-token:/i.test(l))).toEqual([]);
    } finally {
      await imds.close();
      await ssm.close();
      await s3.close();
      await autoscaling.close();
      await sts.stop();
      await ec2.close();
    }
  });
});

describe("gce and azure: the bearer token on no command line", () => {
  test("Secret Manager and Key Vault get the token through a file descriptor", async () => {
    const shims = argvShims(join(work, "argv-gce-azure"));
    const gceToken = "ya29.FakeGceAccessToken-9c1";
    const azureToken = "eyJ0eXAi.FakeAzureToken.sig";
    const metadata = await fake((req) =>
      req.url === "/computeMetadata/v1/instance/service-accounts/default/token"
        ? { body: JSON.stringify({ access_token: gceToken }) }
        : req.url?.startsWith("/metadata/identity/oauth2/token")
          ? { body: JSON.stringify({ access_token: azureToken }) }
          : undefined,
    );
    const secrets = await fake((req) =>
      req.headers.authorization === `Bearer ${gceToken}`
        ? { body: JSON.stringify({ payload: { data: Buffer.from("gce secret").toString("base64") } }) }
        : req.headers.authorization === `Bearer ${azureToken}`
          ? { body: JSON.stringify({ value: "azure secret" }) }
          : { status: 401, body: "" },
    );
    try {
      const gce = await provider("gce", `provider_fetch_secret ca.crt ${join(work, "gce-argv")}`, {
        ...shims.env,
        GCE_METADATA_HOST: metadata.base.replace("http://", ""),
        GCE_SECRETMANAGER_ENDPOINT: secrets.base,
        SECRET_SOURCE: "secretmanager:projects/p1/secrets/kubebake-demo",
      });
      const azure = await provider("azure", `provider_fetch_secret ca.crt ${join(work, "azure-argv")}`, {
        ...shims.env,
        AZURE_IMDS_ENDPOINT: metadata.base,
        AZURE_KEYVAULT_ENDPOINT: secrets.base,
        SECRET_SOURCE: "keyvault:demo-vault/kubebake-demo",
      });
      expect([gce, azure]).toMatchObject([
        { status: 0, stderr: "" },
        { status: 0, stderr: "" },
      ]);
      expect(readFileSync(join(work, "gce-argv"), "utf8")).toBe("gce secret");
      expect(readFileSync(join(work, "azure-argv"), "utf8")).toBe("azure secret");
      const lines = shims.lines();
      expect(lines.filter((l) => l.startsWith("curl ")).length).toBe(4);
      expect(
        lines.filter((l) => l.includes(gceToken) || l.includes(azureToken) || /bearer/i.test(l)),
      ).toEqual([]);
    } finally {
      await metadata.close();
      await secrets.close();
    }
  });
});

describe("cloud calls are tried again with backoff, under a deadline", () => {
  /** Runs a provider call and times it. */
  async function timed(name: string, call: string, env: Record<string, string>) {
    const started = Date.now();
    const result = await provider(name, call, env);
    return { ...result, seconds: (Date.now() - started) / 1000 };
  }

  test("an SSM fetch answered 503 twice, then 200, succeeds on the third attempt, each signed anew", async () => {
    const checks: Promise<boolean>[] = [];
    const answers = [
      { status: 503, body: "" },
      { status: 503, body: '{"__type":"InternalServerError","message":"try again"}' },
    ];
    const ssm = await fake((req, body) => {
      checks.push(sdkSignature(req, body, "ssm").then((e) => e === req.headers.authorization));
      return answers.shift() ?? { body: JSON.stringify({ Parameter: { Value: "PEM\n" } }) };
    });
    try {
      const dest = join(work, "retried-ca.crt");
      const result = await timed("aws", `provider_fetch_secret ca.crt ${dest}`, {
        ...keys,
        AWS_ENDPOINT_URL_SSM: ssm.base,
        SECRET_SOURCE: "ssm:/kubebake/demo",
      });
      expect(result.status).toBe(0);
      expect(ssm.seen.length).toBe(3);
      expect(readFileSync(dest, "utf8")).toBe("PEM\n");
      // Waits of 0.5-1 s, then 1-2 s: jittered, doubling.
      expect(result.seconds).toBeGreaterThanOrEqual(1.5);
      expect(result.seconds).toBeLessThan(8);
      const lines = result.stderr.trim().split("\n");
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(
        /^kubebake bash: SSM GetParameter \/kubebake\/demo\/ca\.crt: attempt 1 failed: HTTP 503; trying again in 0\.[5-9]s$/,
      );
      expect(lines[1]).toMatch(
        /attempt 2 failed: HTTP 503 try again \(InternalServerError\); trying again in [12]\.\ds$/,
      );
      expect(await Promise.all(checks)).toEqual([true, true, true]);
    } finally {
      await ssm.close();
    }
  });

  test("AWS's throttling (HTTP 400 ThrottlingException) is tried again; a refusal (403) or a missing parameter is not", async () => {
    const answers = [
      { status: 400, body: '{"__type":"ThrottlingException","message":"Rate exceeded"}' },
      { body: JSON.stringify({ Parameter: { Value: "PEM\n" } }) },
      {
        status: 403,
        body: '{"__type":"AccessDeniedException","message":"not authorized to perform: ssm:GetParameter"}',
      },
      { status: 400, body: '{"__type":"ParameterNotFound"}' },
    ];
    const ssm = await fake(() => answers.shift());
    const env = { ...keys, AWS_ENDPOINT_URL_SSM: ssm.base, SECRET_SOURCE: "ssm:/kubebake/demo" };
    try {
      const throttled = await timed("aws", `provider_fetch_secret ca.crt ${join(work, "t")}`, env);
      expect(throttled.status).toBe(0);
      expect(throttled.stderr).toContain("attempt 1 failed: HTTP 400 Rate exceeded (ThrottlingException)");
      expect(ssm.seen.length).toBe(2);

      const refused = await timed("aws", `provider_fetch_secret ca.key ${join(work, "r")}`, env);
      expect(refused.status).toBe(1);
      expect(ssm.seen.length).toBe(3);
      expect(refused.stderr).toBe(
        "kubebake bash: error: SSM GetParameter /kubebake/demo/ca.key: HTTP 403 not authorized to perform: ssm:GetParameter (AccessDeniedException)\n",
      );
      // (the one attempt is what says "at once"; the time only says no wait of a retry came first)
      expect(refused.seconds).toBeLessThan(5);

      const missing = await timed("aws", `provider_fetch_secret sa.key ${join(work, "m")}`, env);
      expect(missing.status).toBe(1);
      expect(ssm.seen.length).toBe(4);
      expect(missing.stderr).toBe(
        "kubebake bash: error: SSM GetParameter /kubebake/demo/sa.key: HTTP 400 ParameterNotFound\n",
      );
    } finally {
      await ssm.close();
    }
  });

  test("IMDS, S3 and CompleteLifecycleAction are tried again too, and Auto Scaling's 403 is final at once", async () => {
    let imdsFailures = 1;
    const imds = await fake((req) => {
      if (req.method === "PUT" && req.url === "/latest/api/token") return { body: "imds-token" };
      if (req.url === "/latest/meta-data/instance-id" && imdsFailures-- > 0) return { status: 500, body: "" };
      if (req.url === "/latest/meta-data/instance-id") return { body: "i-0123456789abcdef0" };
      return undefined;
    });
    const asAnswers = [
      { status: 503, body: "" },
      { body: "<CompleteLifecycleActionResponse/>" },
      {
        status: 403,
        body: "<ErrorResponse><Error><Code>AccessDenied</Code><Message>not authorized</Message></Error></ErrorResponse>",
      },
    ];
    const autoscaling = await fake(() => asAnswers.shift());
    const s3Answers = [{ status: 503, body: "<Error><Code>SlowDown</Code></Error>" }];
    const s3 = await fake(() => s3Answers.shift() ?? { body: "" });
    const env = {
      ...keys,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.base,
      AWS_ENDPOINT_URL_AUTO_SCALING: autoscaling.base,
      AWS_ENDPOINT_URL_S3: s3.base,
      SNAPSHOT_STORE: "s3://kb-bucket/demo/etcd",
      GROUP_NAME: "kubebake-demo-masters",
      LAUNCH_HOOK: "kubebake-etcd-voter",
    };
    try {
      const done = await timed("aws", "provider_instance_ready", env);
      expect(done.status).toBe(0);
      expect(done.stdout).toContain("completed launch hook kubebake-etcd-voter");
      expect(done.stderr).toContain("IMDS meta-data/instance-id: attempt 1 failed: HTTP 500");
      expect(done.stderr).toContain(
        "CompleteLifecycleAction for i-0123456789abcdef0: attempt 1 failed: HTTP 503",
      );
      expect(autoscaling.seen.length).toBe(2);

      const refused = await timed("aws", "provider_instance_ready", env);
      expect(refused.status).toBe(1);
      expect(autoscaling.seen.length).toBe(3);
      expect(refused.stderr).toContain(
        "error: CompleteLifecycleAction for i-0123456789abcdef0: HTTP 403 not authorized (AccessDenied)",
      );

      const file = join(work, "retried.db");
      writeFileSync(file, "bytes\n");
      const put = await timed("aws", `. ${join(nodeDir, "s3.sh")}; store_put ${file} a.db`, env);
      expect(put.status).toBe(0);
      expect(put.stderr).toContain("s3 PUT demo/etcd/a.db: attempt 1 failed: HTTP 503 SlowDown");
      expect(s3.seen.map((r) => [r.method, r.url, r.body])).toEqual([
        ["PUT", "/kb-bucket/demo/etcd/a.db", "bytes\n"],
        ["PUT", "/kb-bucket/demo/etcd/a.db", "bytes\n"],
      ]);
    } finally {
      await imds.close();
      await autoscaling.close();
      await s3.close();
    }
  });

  test("a service that never answers fails after the deadline, naming the call and curl's last error", async () => {
    const sockets = new Set<Socket>();
    const silent = createNetServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      const result = await timed("aws", "provider_node_name", {
        AWS_EC2_METADATA_SERVICE_ENDPOINT: `http://127.0.0.1:${port}`,
        KUBEBAKE_IMDS_DEADLINE_SECONDS: "3",
      });
      expect(result.status).not.toBe(0);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(
        /kubebake bash: error: IMDS meta-data\/local-hostname: gave up after 1 attempts in [3-5]s \(deadline 3s\): curl: \(28\) .*timed out/,
      );
      expect(result.seconds).toBeGreaterThanOrEqual(2.9);
      expect(result.seconds).toBeLessThan(8);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test("a refused connection is tried again with growing waits until the deadline", async () => {
    // A port nobody listens on: refused at once, so several attempts fit in the deadline.
    const closed = createNetServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const result = await timed("aws", "provider_fetch_secret ca.crt /dev/null", {
      ...keys,
      AWS_ENDPOINT_URL_SSM: `http://127.0.0.1:${port}`,
      SECRET_SOURCE: "ssm:/kubebake/demo",
      KUBEBAKE_API_DEADLINE_SECONDS: "4",
    });
    expect(result.status).toBe(1);
    // How many attempts fit depends on the machine's load (each is signed anew); at least two do.
    const gaveUp =
      /error: SSM GetParameter \/kubebake\/demo\/ca\.crt: gave up after (\d+) attempts in (\d+)s \(deadline 4s\): curl: \(7\)/.exec(
        result.stderr,
      );
    expect(gaveUp).not.toBeNull();
    const attempts = Number(gaveUp![1]);
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(Number(gaveUp![2])).toBeGreaterThanOrEqual(4);
    const waits = [...result.stderr.matchAll(/trying again in (\d+\.\d)s/g)].map((m) => Number(m[1]));
    expect(waits).toHaveLength(attempts - 1);
    // 1 s, then 2 s, each jittered to 50-100 % (and cut to what is left of the deadline)
    expect(waits[0]).toBeGreaterThanOrEqual(0.5);
    expect(waits[0]).toBeLessThanOrEqual(1);
    if (waits.length > 1) expect(waits[1]).toBeLessThanOrEqual(2);
    // bash counts the deadline in whole seconds of its SECONDS clock, which ticks from the shell's start:
    // the wall time may be up to a second short of it.
    expect(result.seconds).toBeGreaterThanOrEqual(3);
    expect(result.seconds).toBeLessThan(10);
  });
});

test("each provider names its own time servers, reachable without internet (none and azure: the distribution's)", async () => {
  const servers: Record<string, string> = {};
  for (const name of ["aws", "gce", "azure", "none"]) {
    const result = await provider(name, "provider_time_servers", { CLOUD_PROVIDER: name });
    expect({ name, status: result.status, stderr: result.stderr }).toEqual({ name, status: 0, stderr: "" });
    servers[name] = result.stdout.trim();
  }
  expect(servers).toEqual({ aws: "169.254.169.123", gce: "metadata.google.internal", azure: "", none: "" });
});

test("aws: service host names carry the partition's suffix (China regions: amazonaws.com.cn)", async () => {
  const host = async (region: string, service: string) =>
    (await provider("aws", `aws_region=${region}; aws_host ${service}`, {})).stdout.trim();
  expect([
    await host("eu-west-1", "ssm"),
    await host("cn-north-1", "ssm"),
    await host("cn-northwest-1", "autoscaling"),
    await host("us-gov-west-1", "s3"),
  ]).toEqual([
    "ssm.eu-west-1.amazonaws.com",
    "ssm.cn-north-1.amazonaws.com.cn",
    "autoscaling.cn-northwest-1.amazonaws.com.cn",
    "s3.us-gov-west-1.amazonaws.com",
  ]);
});

describe("gce: a join proves the instance with its Google-signed identity token", () => {
  const project = "p1";
  const zone = "europe-west1-b";
  // Google's signing key, played by a key made here; the certificates endpoint lists its certificate.
  const keys = join(work, "google-keys");
  const now = () => Math.floor(Date.now() / 1000);
  let tokenKey = "google-key-1";
  let expiresIn = 3600;
  const instances: Record<string, { id: string; name: string; cluster: string; ip: string }> = {
    "demo-minions-x7k2": { id: "4411", name: "demo-minions-x7k2", cluster: "demo", ip: "10.128.0.5" },
    "demo-minions-b9q1": { id: "4412", name: "demo-minions-b9q1", cluster: "demo", ip: "10.128.0.6" },
    "other-minions-c3d4": { id: "4413", name: "other-minions-c3d4", cluster: "other", ip: "10.128.0.7" },
  };
  let asInstance = "demo-minions-x7k2";
  const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");
  const identityToken = (audience: string) => {
    const header = b64url(JSON.stringify({ alg: "RS256", kid: tokenKey, typ: "JWT" }));
    const i = instances[asInstance]!;
    const payload = b64url(
      JSON.stringify({
        iss: "https://accounts.google.com",
        aud: audience,
        azp: "1234567890",
        iat: now() - 10,
        exp: now() + expiresIn,
        google: {
          compute_engine: {
            instance_id: i.id,
            instance_name: i.name,
            project_id: project,
            project_number: 123456,
            zone,
            instance_creation_timestamp: now() - 600,
          },
        },
      }),
    );
    const signature = spawnSync("openssl", ["dgst", "-sha256", "-sign", join(keys, `${tokenKey}.key`)], {
      input: `${header}.${payload}`,
    }).stdout;
    return `${header}.${payload}.${b64url(signature)}`;
  };

  beforeAll(() => {
    mkdirSync(keys, { recursive: true });
    for (const kid of ["google-key-1", "not-google"]) {
      const made = spawnSync("openssl", [
        ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=${kid}`],
        ...["-keyout", join(keys, `${kid}.key`), "-out", join(keys, `${kid}.crt`)],
      ]);
      expect(made.status).toBe(0);
    }
  });

  async function world() {
    const metadata = await fake((req) => {
      if (req.headers["metadata-flavor"] !== "Google") return { status: 403, body: "" };
      const url = new URL(req.url!, "http://metadata");
      const path = url.pathname.replace("/computeMetadata/v1/", "");
      if (path === "instance/service-accounts/default/identity") {
        if (url.searchParams.get("format") !== "full") return { status: 400, body: "" };
        return { body: identityToken(url.searchParams.get("audience")!) };
      }
      const answers: Record<string, string> = {
        "instance/service-accounts/default/token": JSON.stringify({ access_token: "ya29.master" }),
        "project/project-id": project,
        "instance/zone": `projects/123456/zones/${zone}`,
      };
      return answers[path] !== undefined ? { body: answers[path]! } : undefined;
    });
    const certs = await fake(() => ({
      // Only Google's key is listed: "not-google" signs tokens nobody should accept.
      body: JSON.stringify({ "google-key-1": readFileSync(join(keys, "google-key-1.crt"), "utf8") }),
    }));
    const compute = new GoogleApiFake(["compute.v1"]);
    const asApi = (i: (typeof instances)[string]) => ({
      kind: "compute#instance",
      id: i.id,
      name: i.name,
      status: "RUNNING",
      zone: `https://www.googleapis.com/compute/v1/projects/${project}/zones/${zone}`,
      labels: { kubernetescluster: i.cluster },
      networkInterfaces: [{ networkIP: i.ip, name: "nic0" }],
    });
    compute.on("compute.instances.get", (request) => {
      if (request.headers.authorization !== "Bearer ya29.master") return googleError(401, "no token");
      const i = instances[request.params.instance!];
      return i && request.params.zone === zone ? { json: asApi(i) } : googleError(404, "not found");
    });
    compute.on("compute.instances.aggregatedList", (request) => {
      const filter = /^name = "([^"]+)" AND labels\.kubernetescluster = "([^"]+)"$/.exec(
        request.query.get("filter") ?? "",
      );
      if (!filter) return googleError(400, `filter ${request.query.get("filter")} is not modelled`);
      const found = Object.values(instances).filter((i) => i.name === filter[1] && i.cluster === filter[2]);
      return {
        json: {
          kind: "compute#instanceAggregatedList",
          id: `projects/${project}/aggregated/instances`,
          items: { [`zones/${zone}`]: { instances: found.map(asApi) } },
        },
      };
    });
    await compute.start();
    const env = {
      GCE_METADATA_HOST: metadata.base.replace("http://", ""),
      GCE_OAUTH_CERTS_URL: certs.base,
      GCE_COMPUTE_ENDPOINT: `http://127.0.0.1:${compute.port}`,
      CLUSTER_NAME: "demo",
    };
    const close = async () => {
      await metadata.close();
      await certs.close();
      await compute.stop();
    };
    return { env, compute, close };
  }

  /** A proof made on `asInstance` for `digest`, checked on a master for `node` and `checked` digest. */
  async function verdict(env: Record<string, string>, node: string, digest: string, checked = digest) {
    const result = await provider(
      "gce",
      `proof=$(provider_join_proof ${digest}); provider_verify_join ${node} ${checked} "$proof"`,
      env,
    );
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: "" });
    return result.stdout.trim();
  }

  const digest = "cd".repeat(32);
  afterEach(() => {
    tokenKey = "google-key-1";
    expiresIn = 3600;
    asInstance = "demo-minions-x7k2";
  });

  test("the instance's own name is approved; every other claim is denied, saying why", async () => {
    const { env, compute, close } = await world();
    try {
      expect(await verdict(env, "demo-minions-x7k2", digest)).toBe(
        `approve instance demo-minions-x7k2 (4411) of this cluster in ${zone} signed the request with its identity token`,
      );
      // Another member's name, with this instance's token.
      expect(await verdict(env, "demo-minions-b9q1", digest)).toBe(
        "deny the identity token is instance demo-minions-x7k2's, not node demo-minions-b9q1's",
      );
      // A token made for another request.
      expect(await verdict(env, "demo-minions-x7k2", digest, "ef".repeat(32))).toBe(
        "deny the identity token does not prove this request: it was made for another request or cluster",
      );
      // Another cluster's instance, in its own name.
      asInstance = "other-minions-c3d4";
      expect(await verdict(env, "other-minions-c3d4", digest)).toBe(
        `deny instance other-minions-c3d4 (4413) in ${zone} is not a provisioning or running instance of cluster demo`,
      );
      asInstance = "demo-minions-x7k2";
      expiresIn = -60;
      expect(await verdict(env, "demo-minions-x7k2", digest)).toBe(
        "deny the identity token does not prove this request: it has expired",
      );
      expiresIn = 3600;
      // Signed by a key Google does not list.
      tokenKey = "not-google";
      expect(await verdict(env, "demo-minions-x7k2", digest)).toBe(
        "deny the token's key not-google is not one Google signs with",
      );
      // No proof at all (a kubelet's own request).
      const none = await provider("gce", `provider_verify_join demo-minions-x7k2 ${digest} ""`, env);
      expect(none.stdout.trim()).toBe(
        "deny the request carries no proof of its instance (annotation kubebake.io/join-proof)",
      );
      expect(compute.invalid).toEqual([]);
    } finally {
      await close();
    }
  });

  test("a token whose signature does not match its claims is denied", async () => {
    const { env, close } = await world();
    try {
      const proof = (await provider("gce", `provider_join_proof ${digest}`, env)).stdout;
      const token = (JSON.parse(proof) as { "identity-token": string })["identity-token"];
      const [header, payload, signature] = token.split(".") as [string, string, string];
      // The same signature over claims rewritten to name another instance.
      const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as {
        google: { compute_engine: { instance_name: string } };
      };
      claims.google.compute_engine.instance_name = "demo-minions-b9q1";
      const forged = JSON.stringify({
        "identity-token": `${header}.${b64url(JSON.stringify(claims))}.${signature}`,
      });
      writeFileSync(join(work, "forged-proof.json"), forged);
      const result = await provider(
        "gce",
        `provider_verify_join demo-minions-b9q1 ${digest} "$(cat ${join(work, "forged-proof.json")})"`,
        env,
      );
      expect(result.stdout.trim()).toBe("deny the token's signature is not Google's");
    } finally {
      await close();
    }
  });

  test("the identity token and the master's access token reach no command line", async () => {
    const { env, close } = await world();
    const shims = argvShims(join(work, "argv-gce-join"));
    try {
      const result = await provider(
        "gce",
        `proof=$(provider_join_proof ${digest}); provider_verify_join demo-minions-x7k2 ${digest} "$proof"`,
        { ...env, ...shims.env },
      );
      expect(result.stdout.trim()).toMatch(/^approve instance demo-minions-x7k2 /);
      const lines = shims.lines();
      expect(lines.some((l) => l.startsWith("openssl dgst -sha256 -verify"))).toBe(true);
      // No part of a token: a JWT's parts are long base64url runs, the access token is ya29.*.
      expect(lines.filter((l) => /ya29\.|eyJ[A-Za-z0-9_-]{20,}|bearer/i.test(l))).toEqual([]);
    } finally {
      await close();
    }
  });

  test("a serving certificate's names are checked against the addresses Compute gives the cluster's instance", async () => {
    const { env, compute, close } = await world();
    try {
      const own = await provider("gce", "provider_node_addresses demo-minions-x7k2", env);
      expect({ stdout: own.stdout, stderr: own.stderr }).toEqual({
        stdout: "IP:10.128.0.5\nDNS:demo-minions-x7k2\n",
        stderr: "",
      });
      // Another cluster's instance is not this cluster's record of anything.
      const other = await provider("gce", "provider_node_addresses other-minions-c3d4", env);
      expect({ stdout: other.stdout, status: other.status }).toEqual({ stdout: "", status: 0 });
      expect(compute.invalid).toEqual([]);
    } finally {
      await close();
    }
  });
});

describe("gce: masters publish the join token to Secret Manager and ask their group to recreate them", () => {
  async function world() {
    const metadata = await fake((req) => {
      if (req.headers["metadata-flavor"] !== "Google") return { status: 403, body: "" };
      const answers: Record<string, string> = {
        "/computeMetadata/v1/instance/service-accounts/default/token": JSON.stringify({
          access_token: "ya29.master-token",
        }),
        "/computeMetadata/v1/project/project-id": "p1",
        "/computeMetadata/v1/instance/zone": "projects/123456/zones/europe-west1-c",
        "/computeMetadata/v1/instance/name": "demo-masters-k2m4",
      };
      return answers[req.url!] !== undefined ? { body: answers[req.url!]! } : undefined;
    });
    const google = new GoogleApiFake(["secretmanager.v1", "compute.v1"]);
    const versions: { name: string; state: string; data: string }[] = [];
    const recreated: unknown[] = [];
    const authorized = (request: { headers: Record<string, unknown> }) =>
      request.headers.authorization === "Bearer ya29.master-token";
    google.on("secretmanager.projects.secrets.addVersion", (request) => {
      if (!authorized(request)) return googleError(401, "no token");
      const secret = request.params.parent!;
      const body = request.json as { payload: { data: string } };
      const version = {
        name: `${secret}/versions/${versions.length + 1}`,
        state: "ENABLED",
        data: body.payload.data,
      };
      versions.push(version);
      return { json: { name: version.name, state: version.state } };
    });
    google.on("secretmanager.projects.secrets.versions.list", (request) => {
      if (!authorized(request)) return googleError(401, "no token");
      if (request.query.get("filter") !== "state:ENABLED") return googleError(400, "filter not modelled");
      if (request.params.parent !== "projects/p1/secrets/kubebake-demo-bootstrap-token")
        return googleError(404, "no such secret");
      return {
        json: {
          versions: versions.filter((v) => v.state === "ENABLED").map(({ name, state }) => ({ name, state })),
        },
      };
    });
    google.on("secretmanager.projects.secrets.versions.destroy", (request) => {
      if (!authorized(request)) return googleError(401, "no token");
      const name = request.params.name!;
      const version = versions.find((v) => v.name === name);
      if (!version) return googleError(404, "no such version");
      version.state = "DESTROYED";
      return { json: { name, state: "DESTROYED" } };
    });
    google.on("compute.regionInstanceGroupManagers.recreateInstances", (request) => {
      if (!authorized(request)) return googleError(401, "no token");
      recreated.push({ ...request.params, body: request.json });
      return { json: { kind: "compute#operation", name: "operation-1", status: "RUNNING" } };
    });
    await google.start();
    const env = {
      GCE_METADATA_HOST: metadata.base.replace("http://", ""),
      GCE_SECRETMANAGER_ENDPOINT: google.url,
      GCE_COMPUTE_ENDPOINT: google.url,
      SECRET_SOURCE: "secretmanager:projects/p1/secrets/kubebake-demo",
      GROUP_NAME: "kubebake-demo-masters",
    };
    const close = async () => {
      await metadata.close();
      await google.stop();
    };
    return { env, google, versions, recreated, close };
  }

  test("each token is the newest version and the only readable one; neither it nor the access token is on a command line", async () => {
    const { env, google, versions, close } = await world();
    const shims = argvShims(join(work, "argv-gce-publish"));
    try {
      expect((await provider("gce", "provider_can_publish_secret && echo yes", env)).stdout).toBe("yes\n");
      for (const token of ["abcdef.0123456789abcdef", "ghijkl.fedcba9876543210"]) {
        const file = join(work, "minted-token");
        writeFileSync(file, token);
        const published = await provider("gce", `provider_publish_secret bootstrap-token ${file}`, {
          ...env,
          ...shims.env,
        });
        expect({ status: published.status, stderr: published.stderr }).toEqual({ status: 0, stderr: "" });
      }
      expect(versions.map((v) => [v.name, v.state, Buffer.from(v.data, "base64").toString()])).toEqual([
        [
          "projects/p1/secrets/kubebake-demo-bootstrap-token/versions/1",
          "DESTROYED",
          "abcdef.0123456789abcdef",
        ],
        [
          "projects/p1/secrets/kubebake-demo-bootstrap-token/versions/2",
          "ENABLED",
          "ghijkl.fedcba9876543210",
        ],
      ]);
      const lines = shims.lines();
      expect(lines.some((l) => l.startsWith("curl "))).toBe(true);
      expect(
        lines.filter((l) => /ya29\.|0123456789abcdef|fedcba9876543210|YWJjZGVm|Z2hpamts/i.test(l)),
      ).toEqual([]);
      expect(google.invalid).toEqual([]);
    } finally {
      await close();
    }
  });

  test("a master that votes and serves says so in its guest attribute, the launch gate apply waits for", async () => {
    const written: { url: string; method: string; body: string }[] = [];
    const metadata = await fake((req, body) => {
      if (req.headers["metadata-flavor"] !== "Google") return { status: 403, body: "" };
      if (req.url?.startsWith("/computeMetadata/v1/instance/guest-attributes/")) {
        written.push({ url: req.url, method: req.method!, body });
        return { body: "" };
      }
      return undefined;
    });
    try {
      const env = {
        GCE_METADATA_HOST: metadata.base.replace("http://", ""),
        LAUNCH_HOOK: "kubebake/launch-ready",
      };
      const told = await provider("gce", "provider_instance_ready", env);
      expect({ status: told.status, stderr: told.stderr }).toEqual({ status: 0, stderr: "" });
      expect(written).toEqual([
        {
          url: "/computeMetadata/v1/instance/guest-attributes/kubebake/launch-ready",
          method: "PUT",
          body: "ready",
        },
      ]);
      const unnamed = await provider("gce", "provider_instance_ready", {
        ...env,
        LAUNCH_HOOK: "launch-ready",
      });
      expect(unnamed.status).not.toBe(0);
      expect(unnamed.stderr).toMatch(/is not a guest attribute \(namespace\/key\)/);
    } finally {
      await metadata.close();
    }
  });

  test("an unhealthy master asks its regional group to recreate it", async () => {
    const { env, google, recreated, close } = await world();
    try {
      const told = await provider("gce", "provider_instance_unhealthy", env);
      expect({ status: told.status, stderr: told.stderr }).toEqual({ status: 0, stderr: "" });
      expect(told.stdout).toContain("asked group kubebake-demo-masters to recreate demo-masters-k2m4");
      expect(recreated).toEqual([
        {
          project: "p1",
          region: "europe-west1",
          instanceGroupManager: "kubebake-demo-masters",
          body: { instances: ["zones/europe-west1-c/instances/demo-masters-k2m4"] },
        },
      ]);
      expect(google.invalid).toEqual([]);
    } finally {
      await close();
    }
  });
});
