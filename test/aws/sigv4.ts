/**
 * What the AWS SDK's own SigV4 signer makes of a request a fake received: the Authorization header it
 * would send for the same method, host, path, query, signed headers, body and date. Fakes compare it with
 * the one they got, so a script's hand-made signature is checked against the SDK's, not against itself.
 */
import type { IncomingMessage } from "node:http";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";

export interface SigningKeys {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** An x-amz-date value (yyyymmddThhmmssZ) as a Date. */
export const amzDate = (d: string) =>
  new Date(
    `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}T${d.slice(9, 11)}:${d.slice(11, 13)}:${d.slice(13, 15)}Z`,
  );

export async function sdkAuthorization(
  req: IncomingMessage,
  body: string,
  { service, region, keys }: { service: string; region: string; keys: SigningKeys },
): Promise<string> {
  const signed = /SignedHeaders=([^,]+)/.exec(String(req.headers.authorization ?? ""))?.[1]?.split(";") ?? [];
  const url = new URL(req.url!, "http://fake");
  const signer = new SignatureV4({
    service,
    region,
    sha256: Sha256,
    applyChecksum: false,
    uriEscapePath: service !== "s3", // S3 signs the path as sent, each segment encoded once
    credentials: keys,
  });
  const request = new HttpRequest({
    method: req.method,
    protocol: "http:",
    hostname: String(req.headers.host),
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: Object.fromEntries(signed.map((h) => [h, String(req.headers[h] ?? "")])),
    body,
  });
  const signingDate = amzDate(String(req.headers["x-amz-date"] ?? ""));
  return String((await signer.sign(request, { signingDate })).headers.authorization);
}
