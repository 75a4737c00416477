/**
 * Names the options a command line got wrong, with the option probably meant. yargs checks required
 * options before unknown ones, so `--outt x` would otherwise read "Missing required argument: out".
 */

/** The options a command line names (`--name`, `--name=value`, `-n`), up to `--`. */
export function optionsNamed(argv: string[]): string[] {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end))
    .filter((token) => /^--?[^-\d]/.test(token))
    .map((token) => token.replace(/^--?/, "").split("=")[0]!);
}

/** Edits (insert, delete, substitute, swap two neighbours) from one word to another. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
      }
    }
  }
  return d[a.length]![b.length]!;
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
      const near = known
        .filter((k) => k.length > 1)
        .map((k) => ({ k, distance: editDistance(name, k) }))
        .filter(({ distance }) => distance <= Math.max(1, Math.floor(name.length / 3)))
        .sort((x, y) => x.distance - y.distance)[0];
      return `unknown option ${flag(name)}${near ? `, did you mean --${near.k}?` : ""}`;
    });
}
