/** What --json prints: one JSON document on stdout. */
export const printJson = (value: unknown) => process.stdout.write(JSON.stringify(value, null, 2) + "\n");
