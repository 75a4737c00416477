/** How the cluster-spec tests of every cloud ask why a spec is refused: exit 2, one message naming the field. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { loadClusterSpec } from "../../src/cluster/load";
import { ExitCode, KubebakeError } from "../../src/errors";

/** Writes `spec` as cluster.yaml in a new folder under `dir`; returns its path. */
export function writeIn(dir: string, spec: Record<string, unknown>): string {
  const path = join(mkdtempSync(join(dir, "spec-")), "cluster.yaml");
  writeFileSync(path, stringify(spec));
  return path;
}

/** The message a refused spec gets (exit 2); a spec that loads fails the test. */
export function refusal(dir: string, spec: Record<string, unknown>): string {
  try {
    loadClusterSpec(writeIn(dir, spec));
  } catch (error) {
    expect(error).toBeInstanceOf(KubebakeError);
    expect((error as KubebakeError).exitCode).toBe(ExitCode.invalidInput);
    return (error as Error).message;
  }
  throw new Error("expected the spec to be refused");
}
