#!/usr/bin/env node
// The package's command: runs the compiled CLI (built by `npm run build`, which `npm ci` runs).
import { run } from '../dist/ops/cli.js'

run(process.argv.slice(2))
