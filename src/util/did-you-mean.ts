/** The known name closest to a misspelt one, if it is close enough to be what was meant. */
export function closest(input: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of known) {
    const d = editDistance(input, name);
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  // A third of the name may be wrong (a typo or two), not more: "europe" suggests no region.
  return bestDistance <= Math.max(1, Math.floor(input.length / 3)) ? best : undefined;
}

/** `; did you mean "x"?` or nothing. */
export function didYouMean(input: string, known: readonly string[]): string {
  const match = closest(input, known);
  return match === undefined ? "" : `; did you mean ${JSON.stringify(match)}?`;
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        previous[j]! + 1,
        row[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = row;
  }
  return previous[b.length]!;
}
