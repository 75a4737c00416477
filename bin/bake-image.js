#!/usr/bin/env node
"use strict";
const { main, bakeImage } = require("../dist/cli.js");
main(bakeImage, process.argv.slice(2)).then((code) => (process.exitCode = code));
