#!/usr/bin/env node
"use strict";
require("./run-cli.js")("kubebake");
