/**
 * Every failure a user can cause or fix ends as a KubebakeError with a documented exit code;
 * the CLI prints its message (never a stack trace) and exits with the code.
 */
export const ExitCode = {
  ok: 0,
  /** A bug: the message says so; KUBEBAKE_DEBUG=1 prints the stack. Also: the CLI is not built (bin/). */
  internal: 1,
  /** A spec, an option, a file or a folder is not what the command expects: the message names it. */
  invalidInput: 2,
  digestMismatch: 3,
  downloadFailed: 4,
  missingTool: 5,
  hygiene: 6,
  /** A cloud API call failed (credentials, permissions, quotas, the service): the message names the call. */
  cloudFailed: 7,
  /** The cloud holds a state kubebake will not change on its own (for example a partial PKI of a running cluster). */
  unsafeState: 8,
  /** A change needs confirmation: answer on a terminal or pass --yes (nothing was changed). */
  notConfirmed: 9,
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
