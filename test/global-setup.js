// Once per test run: bundle the CLI (bin/ runs dist/) and build the fixture mirror (stand-ins + Debian .debs).
const { execFileSync } = require("node:child_process");
const { join } = require("node:path");

module.exports = async () => {
  const root = join(__dirname, "..");
  execFileSync("node", ["scripts/build.mjs"], { cwd: root, stdio: "inherit" });
  execFileSync("node", ["test/fixtures/build-mirror.mjs"], { cwd: root, stdio: "inherit" });
};
