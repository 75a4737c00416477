/**
 * Every failure a user can cause or fix ends as a KubebakeError with a documented exit code;
 * the CLI prints its message (never a stack trace) and exits with the code.
 */
export const ExitCode = {
  ok: 0,
  internal: 1,
  invalidInput: 2,
  digestMismatch: 3,
  downloadFailed: 4,
  missingTool: 5,
  hygiene: 6,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class KubebakeError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue,
  ) {
    super(message);
    this.name = "KubebakeError";
  }
}

export const invalidInput = (message: string) => new KubebakeError(message, ExitCode.invalidInput);
