/**
 * How tests point the official @azure/arm-* clients at an ArmFake: its endpoint, its CA, a static token, and
 * the api-version of the reference description the fake checks against (the installed clients default to
 * newer ones).
 */
import type { TokenCredential } from "@azure/identity";
import type { ArmFake } from "./arm-fake";

export const credential: TokenCredential = {
  getToken: async () => ({ token: "t", expiresOnTimestamp: Date.now() + 3600e3 }),
};

/** Constructor options: autorest clients honour `apiVersion` for every operation they send. */
export const clientOptions = (fake: ArmFake, apiVersion?: string) => ({
  endpoint: fake.endpoint,
  tlsOptions: { ca: fake.ca },
  ...(apiVersion ? { apiVersion } : {}),
});

/** The status, code and message of a call that must fail (the clients throw RestError). */
export async function failure(
  promise: Promise<unknown>,
): Promise<{ status?: number; code?: string; message?: string }> {
  const error = (await promise.then(
    () => undefined,
    (e: unknown) => e,
  )) as { statusCode?: number; code?: string; message?: string } | undefined;
  if (!error) throw new Error("the call succeeded");
  return { status: error.statusCode, code: error.code, message: error.message };
}
