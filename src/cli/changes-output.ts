/**
 * How commands that change a cloud talk to the user. Each change is printed once, on stdout: a plan lists
 * the changes and counts them; a run that makes changes prints each as it begins (so a log keeps what was
 * done before a failure) and ends with a count, leaving out changes already shown in the plan the user
 * confirmed. With --json, one document at the end and nothing else on stdout: the changes, and the notes
 * the run made besides them (a default it chose, what it left alone).
 *
 * Confirmation: without --yes a change is planned first; an empty plan is done at once; otherwise the plan
 * is shown and, on a terminal, the user is asked. Off a terminal, or with --json, nobody can answer, so the
 * command stops with exit 9 and changes nothing.
 */
import { createInterface } from "node:readline";
import { ExitCode, KubebakeError } from "../errors";
import { ChangeRecorder, formatChange, type Change } from "../launch/changes";
import { progressFor, type Progress } from "../util/progress";
import { printJson } from "./output";

export function printPlan(
  changes: Change[],
  json: boolean,
  out: NodeJS.WritableStream = process.stdout,
  notes: string[] = [],
): void {
  if (json) return void printJson({ changes, notes });
  for (const change of changes) out.write(formatChange(change) + "\n");
  out.write(changes.length === 0 ? "no changes\n" : `${changes.length} change(s) planned\n`);
}

export function printMade(changes: Change[], json: boolean, extra: object = {}, notes: string[] = []): void {
  if (json) return void printJson({ changes, notes, ...extra });
  process.stdout.write(changes.length === 0 ? "no changes\n" : `${changes.length} change(s) made\n`);
}

/**
 * A recorder that makes changes, printing each as it begins unless the confirmed plan (`shown`) had it. A
 * planned line matches the line made with real ids where the plan had placeholders ("(new vpc)").
 */
export function makingRecorder(json: boolean, shown: Change[] = []): ChangeRecorder {
  const progress = progressFor({ json });
  const unseen = shown.map((change) => asPattern(formatChange(change)));
  const printing: Progress = {
    step: (line) => {
      if (json) return;
      const seen = unseen.findIndex((pattern) => pattern.test(line));
      if (seen >= 0) unseen.splice(seen, 1);
      else process.stdout.write(line + "\n");
    },
    info: (message) => progress.info(message),
  };
  return new ChangeRecorder(false, printing);
}

/** A planned change line as a pattern: each placeholder id (plannedId: "(new …)") stands for a real id. */
function asPattern(planned: string): RegExp {
  const parts = planned.split(/\(new [^()]*\)/).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join("[^\\s,()]+")}$`);
}

const onTerminal = () => Boolean(process.stdin.isTTY && process.stderr.isTTY);

/** Asks on the terminal; only y or yes goes on. End of input or Ctrl-C is a no. */
function ask(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  return new Promise((resolve) => {
    rl.once("close", () => resolve(false));
    rl.question(question, (answer) => {
      resolve(/^y(es)?$/i.test(answer.trim()));
      rl.close();
    });
  });
}

export interface Confirmable {
  json: boolean;
  yes: boolean;
  /** Whose resources change, for messages: "cluster demo". */
  subject: string;
  /** The question for n planned changes: "Make these 3 change(s) to cluster demo?" */
  question: (n: number) => string;
  /** Reconciles with the recorder (a dry run or not); returns fields for the --json result. */
  run: (rec: ChangeRecorder) => Promise<object | void>;
}

/** Plans, asks when it must, makes the changes and reports them (see the file's comment). */
export async function changeConfirmed(c: Confirmable): Promise<void> {
  if (c.yes) {
    const rec = makingRecorder(c.json);
    const extra = await c.run(rec);
    return printMade(rec.changes, c.json, extra ?? {}, rec.notes);
  }
  const plan = new ChangeRecorder(true, progressFor({ json: c.json }));
  const planned = await c.run(plan);
  if (plan.changes.length === 0) return printMade([], c.json, planned ?? {}, plan.notes);
  printPlan(plan.changes, c.json, process.stdout, plan.notes);
  if (c.json || !onTerminal()) {
    throw new KubebakeError(
      `${c.subject}: ${plan.changes.length} change(s) need confirmation: answer on a terminal or pass --yes`,
      ExitCode.notConfirmed,
    );
  }
  // With stdout sent elsewhere (`apply > log`), the person asked must still see what they are asked about.
  if (!process.stdout.isTTY) printPlan(plan.changes, false, process.stderr);
  if (!(await ask(`${c.question(plan.changes.length)} [y/N] `))) {
    throw new KubebakeError(`${c.subject}: not confirmed; nothing was changed`, ExitCode.notConfirmed);
  }
  const rec = makingRecorder(c.json, plan.changes);
  const extra = await c.run(rec);
  printMade(rec.changes, c.json, extra ?? {}, rec.notes);
}
