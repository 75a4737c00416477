/** What every cloud says of a resource that has one of a cluster's names but not its id. */
import { ExitCode, KubebakeError } from "../errors";

/** A same-named resource without this cluster's id: never adopted, changed or deleted (exit 8). */
export function foreign(kind: string, name: string, owner: string | undefined): KubebakeError {
  return new KubebakeError(
    `${kind} ${name} exists but is not this cluster's (its owner is ${owner ?? "not kubebake"}); rename the cluster or remove it`,
    ExitCode.unsafeState,
  );
}
