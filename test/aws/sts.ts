/**
 * A strict model of STS GetCallerIdentity, the one call a join proof is checked with: it answers only a
 * request signed (SigV4, checked with the AWS SDK's own signer) by a session it knows, carrying that
 * session's token, dated within STS's 15 minutes, with host among the signed headers. moto's STS checks no
 * signature at all, so it cannot stand in for what decides a join.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { amzDate, sdkAuthorization } from "./sigv4";

export interface StsSession {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** What STS names the signer: `arn:aws:sts::<account>:assumed-role/<role>/<session>`. */
  arn: string;
}

export interface FakeSts {
  endpoint: string;
  /** Every request's outcome: "ok <arn>" or the error code. */
  answers: string[];
  stop(): Promise<void>;
}

const error = (status: number, code: string, message: string) => ({
  status,
  code,
  body: `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
});

async function answer(req: IncomingMessage, body: string, sessions: StsSession[], region: string) {
  const form = new URLSearchParams(body);
  if (
    req.method !== "POST" ||
    form.get("Action") !== "GetCallerIdentity" ||
    form.get("Version") !== "2011-06-15"
  )
    return error(400, "InvalidAction", "only GetCallerIdentity is modelled");
  const authorization = String(req.headers.authorization ?? "");
  const parts =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/sts\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(
      authorization,
    );
  if (!parts) return error(400, "IncompleteSignature", "the Authorization header is not SigV4 for sts");
  const [, keyId, , scopeRegion, signedList] = parts;
  const session = sessions.find((s) => s.accessKeyId === keyId);
  if (!session)
    return error(403, "InvalidClientTokenId", "The security token included in the request is invalid.");
  if (req.headers["x-amz-security-token"] !== session.sessionToken)
    return error(403, "InvalidClientTokenId", "The security token included in the request is invalid.");
  const signed = signedList!.split(";");
  if (!signed.includes("host") || !signed.includes("x-amz-date"))
    return error(403, "SignatureDoesNotMatch", "host and x-amz-date must be signed");
  if (scopeRegion !== region)
    return error(403, "SignatureDoesNotMatch", `credential should be scoped to ${region}`);
  const date = String(req.headers["x-amz-date"] ?? "");
  if (!/^\d{8}T\d{6}Z$/.test(date)) return error(403, "IncompleteSignature", "no x-amz-date");
  if (Math.abs(Date.now() - amzDate(date).getTime()) > 15 * 60_000)
    return error(403, "SignatureDoesNotMatch", "Signature expired: the request is more than 15 minutes old");
  const expected = await sdkAuthorization(req, body, { service: "sts", region, keys: session });
  if (expected !== authorization)
    return error(
      403,
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided.",
    );
  const account = session.arn.split(":")[4]!;
  return {
    status: 200,
    code: `ok ${session.arn}`,
    body: `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>${session.arn}</Arn><UserId>AROAEXAMPLE:${session.arn.split("/").pop()}</UserId><Account>${account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></GetCallerIdentityResponse>`,
  };
}

export async function startFakeSts(sessions: StsSession[], region: string): Promise<FakeSts> {
  const answers: string[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      void answer(req, body, sessions, region).then((a) => {
        answers.push(a.code);
        res.writeHead(a.status, { "content-type": "text/xml" }).end(a.body);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    answers,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
