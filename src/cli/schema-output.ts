import { z } from "zod";
import { writeOutputFile } from "../util/output";

/** A spec's JSON Schema (the input side: defaults optional), for editors; to a file or stdout. */
export async function writeJsonSchema(schema: z.ZodType, out: string | undefined): Promise<void> {
  const text = JSON.stringify(z.toJSONSchema(schema, { io: "input" }), null, 2) + "\n";
  if (out) await writeOutputFile("--out", out, text);
  else process.stdout.write(text);
}
