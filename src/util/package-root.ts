import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

/** The kubebake checkout or package: units/, image/ and src/node/ are read from here, bundled or not. */
export function packageRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, "package.json")) || !existsSync(join(dir, "units"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the kubebake package root above ${__dirname}`);
    dir = parent;
  }
  return dir;
}
