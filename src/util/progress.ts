/**
 * Progress for long-running commands: lines on a terminal's stderr, nothing in pipelines or with --json,
 * so stdout stays machine-readable.
 */
export interface Progress {
  step(message: string): void;
  info(message: string): void;
}

export const silentProgress: Progress = { step: () => {}, info: () => {} };

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const started = Date.now();
  const stamp = () => `[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s]`;
  return {
    step: (message) => stream.write(`${stamp()} ${message}\n`),
    info: (message) => stream.write(`        ${message}\n`),
  };
}

export function progressFor(options: { json?: boolean; quiet?: boolean }): Progress {
  if (options.json || options.quiet || !process.stderr.isTTY) return silentProgress;
  return terminalProgress();
}
