"use strict";
// Shared by both bins: runs the bundled CLI, or says in one line how to build it (a fresh clone has no dist/).
const { existsSync } = require("node:fs");
const { join } = require("node:path");

module.exports = function runCli(name) {
  const root = join(__dirname, "..");
  const bundle = join(root, "dist", "cli.js");
  if (!existsSync(bundle)) {
    process.stderr.write(
      `${name}: ${bundle} is missing: run 'npm install' (or 'npm run build') in ${root}\n`,
    );
    process.exitCode = 1;
    return;
  }
  const cli = require(bundle);
  const command = name === "kubebake" ? cli.kubebake : cli.bakeImage;
  cli.main(command, process.argv.slice(2)).then((code) => (process.exitCode = code));
};
