/**
 * A plan is the list of changes a reconciliation makes. `plan` runs the reconciliation with reads only
 * and records the changes it would make; `apply` records and makes them. One code path for both, so the
 * printed plan is what apply does.
 */
import type { Progress } from "../util/progress";

export interface Change {
  action: "create" | "update" | "delete" | "replace";
  kind: string;
  name: string;
  detail?: string;
}

const SIGN = { create: "+", update: "~", delete: "-", replace: "±" } as const;

export function formatChange(change: Change): string {
  return `${SIGN[change.action]} ${change.action} ${change.kind} ${change.name}${change.detail ? ` (${change.detail})` : ""}`;
}

export class ChangeRecorder {
  readonly changes: Change[] = [];
  /** What the run said besides its changes (a default it chose, what it left alone): --json carries them. */
  readonly notes: string[] = [];
  constructor(
    readonly dryRun: boolean,
    private progress: Progress,
  ) {}

  /** Records the change; outside a dry run also makes it. In a dry run `planned` stands for the result. */
  async make<T>(change: Change, effect: () => Promise<T>, planned: T): Promise<T> {
    this.changes.push(change);
    if (this.dryRun) return planned;
    this.progress.step(formatChange(change));
    return effect();
  }

  info(message: string): void {
    this.notes.push(message);
    this.progress.info(message);
  }
}

/** Stands in for an id that only a real create would return; reads skip resources with such ids. */
export const plannedId = (what: string) => `(new ${what})`;
export const isPlanned = (id: string | undefined) => id?.startsWith("(new ") ?? false;
