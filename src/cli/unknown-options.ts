/**
 * Names the options a command line got wrong, with the option probably meant. yargs checks required
 * options before unknown ones, so `--outt x` would otherwise read "Missing required argument: out".
 */
import { closest } from "../util/did-you-mean";

/** The options a command line names (`--name`, `--name=value`, `-n`), up to `--`. */
export function optionsNamed(argv: string[]): string[] {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end))
    .filter((token) => /^--?[^-\d]/.test(token))
    .map((token) => token.replace(/^--?/, "").split("=")[0]!);
}

const flag = (name: string) => (name.length === 1 ? `-${name}` : `--${name}`);

/** "unknown option --outt, did you mean --out?" for each option not in `known`; empty when all are known. */
export function unknownOptions(argv: string[], known: string[]): string[] {
  const accepted = new Set(known);
  const isKnown = (name: string) =>
    accepted.has(name) || (name.startsWith("no-") && accepted.has(name.slice(3)));
  return [...new Set(optionsNamed(argv))]
    .filter((name) => !isKnown(name))
    .map((name) => {
      const near = closest(
        name,
        known.filter((k) => k.length > 1),
      );
      return `unknown option ${flag(name)}${near ? `, did you mean --${near}?` : ""}`;
    });
}
