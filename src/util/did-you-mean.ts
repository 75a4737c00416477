/** Suggestions for misspelt names (components, regions, options): the closest known one, if close enough. */
import { distance } from "fastest-levenshtein";

/** The known name closest to a misspelt one, if it is close enough to be what was meant. */
export function closest(input: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of known) {
    const d = distance(input, name);
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
