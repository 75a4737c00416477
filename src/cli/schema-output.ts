import { writeFileSync } from "node:fs";
import { z } from "zod";

/** A spec's JSON Schema (the input side: defaults optional), for editors; to a file or stdout. */
export function writeJsonSchema(schema: z.ZodType, out: string | undefined): void {
  const text = JSON.stringify(z.toJSONSchema(schema, { io: "input" }), null, 2) + "\n";
  if (out) writeFileSync(out, text);
  else process.stdout.write(text);
}
