// Reads tap's TAP output and prints one line: "N passed, N failed". A test is a subtest of a
// test file (the second level); a file that fails without reporting any test counts as one.
import { readFileSync } from 'node:fs'

const lines = readFileSync(0, 'utf8').split('\n')
let passed = 0
let failed = 0
let fileFailures = 0
let failedInFile = 0

for (const line of lines) {
  const test = /^ {4}(not )?ok \d+/.exec(line)
  if (test !== null) {
    if (test[1] === undefined) passed++
    else { failed++; failedInFile++ }
    continue
  }
  const file = /^(not )?ok \d+ - /.exec(line)
  if (file !== null) {
    if (file[1] !== undefined && failedInFile === 0) fileFailures++
    failedInFile = 0
  }
}

console.log(`${passed} passed, ${failed + fileFailures} failed`)
