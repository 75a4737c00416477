#!/usr/bin/env node
"use strict";
const { main, kubebake } = require("../dist/cli.js");
main(kubebake, process.argv.slice(2)).then((code) => (process.exitCode = code));
