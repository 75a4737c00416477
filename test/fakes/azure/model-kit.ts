/**
 * What the stateful Azure models (compute-vmss, keyvault, web, storage-arm, eventgrid) share: JSON helpers,
 * ARM's error answers and preconditions, and the jobs a long-running operation finishes when it is polled
 * for the last time, or when a test settles the model without polling.
 */
import { createHash } from "node:crypto";
import { armError, type ArmFake, type ArmRequest, type ArmResponse } from "./arm-fake";
import type { Json, JsonObject } from "./openapi";

export const asObject = (value: Json | undefined): JsonObject =>
  value !== null && typeof value === "object" && !Array.isArray(value) ? value : {};

export const asArray = (value: Json | undefined): Json[] => (Array.isArray(value) ? value : []);

/** ARM PATCH semantics (JSON merge patch): objects merge, null removes a key, anything else replaces. */
export function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const merged: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else if (typeof value === "object" && !Array.isArray(value))
      merged[key] = mergePatch(asObject(merged[key]), value);
    else merged[key] = value;
  }
  return merged;
}

export const badRequest = (code: string, message: string): ArmResponse => armError(400, code, message);

/** ARM's answer for a missing resource, worded as ARM words it. */
export function resourceNotFound(req: ArmRequest, type: string): ArmResponse {
  const name = req.path.split("/").pop();
  return armError(
    404,
    "ResourceNotFound",
    `The Resource '${type}/${name}' under resource group '${req.params.resourceGroupName}' was not found.`,
  );
}

/** If-Match / If-None-Match against the resource's current ETag (undefined: it does not exist). */
export function preconditionFailed(req: ArmRequest, etag: string | undefined): ArmResponse | undefined {
  const ifMatch = req.headers["if-match"];
  if (ifMatch !== undefined && (etag === undefined || (ifMatch !== "*" && ifMatch !== etag)))
    return armError(412, "PreconditionFailed", `If-Match ${ifMatch} does not match the resource's ETag`);
  if (req.headers["if-none-match"] === "*" && etag !== undefined)
    return armError(412, "PreconditionFailed", "If-None-Match: * but the resource exists");
  return undefined;
}

export const lower = (id: string) => id.toLowerCase();

/** `/subscriptions/s/resourceGroups/g` of a resource id. */
export const groupIdOf = (id: string): string =>
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+/i.exec(id)?.[0] ?? "";

/** A stable GUID for a name (principal and client ids of an identity, a VM's vmId): tests can predict it. */
export function guidFor(seed: string): string {
  const hex = createHash("sha256").update(seed).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Effects a long-running operation applies when it ends (a VM boots, a deleted resource goes), run once:
 * by the client's last poll, or by settle() for a client that did not wait.
 */
export class Jobs {
  private readonly waiting = new Set<() => void>();
  private readonly running = new Set<Promise<void>>();
  private readonly failures: unknown[] = [];

  /** Registers an effect; the returned function runs it (at most once). */
  add(effect: () => void): () => void {
    const run = () => {
      if (!this.waiting.delete(run)) return;
      effect();
    };
    this.waiting.add(run);
    return run;
  }

  /** Starts a hook (e.g. onBoot) whose failure settle() reports. */
  track(work: () => void | Promise<void>): void {
    const promise = Promise.resolve()
      .then(work)
      .catch((error: unknown) => void this.failures.push(error))
      .finally(() => this.running.delete(promise));
    this.running.add(promise);
  }

  /** Runs every effect still waiting and waits for the hooks they started; throws the first hook failure. */
  async settle(): Promise<void> {
    while (this.waiting.size > 0 || this.running.size > 0) {
      for (const run of [...this.waiting]) run();
      await Promise.all([...this.running]);
    }
    if (this.failures.length > 0) throw this.failures.splice(0)[0];
  }
}

/** The headers of a long-running operation that ends Succeeded and then runs `effect`. */
export function succeedLater(fake: ArmFake, req: ArmRequest, run: () => void): Record<string, string> {
  return fake.asyncOperation(req, { status: "Succeeded" }, () => run());
}
