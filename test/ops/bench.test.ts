// `mimamori bench` prints exactly one JSON line a script can read; this checks its shape and
// counts on a small run, never its timings. TMPDIR points into the test folder, so a temporary
// folder the bench forgets to remove shows up there.

import t, { type Test } from 'tap'
import { readdirSync } from 'node:fs'
import { runCli } from './cli-process.js'

const RECIPIENTS = 300

async function bench (t: Test, extra: string[]): Promise<any> {
  const tmp = t.testdir()
  const result = await runCli(t, ['bench', '--recipients', String(RECIPIENTS), ...extra], { cwd: tmp, env: { TMPDIR: tmp }, timeoutMs: 80_000 })
  t.equal(result.code, 0, `exit code 0 (stderr: ${result.stderr.trim()})`)
  t.equal(result.stderr, '', 'nothing on stderr')
  const lines = result.stdout.split('\n')
  t.equal(lines.length, 2, 'exactly one line, ended by a newline')
  t.equal(lines[1], '')
  let json: any
  try {
    json = JSON.parse(lines[0] ?? '')
  } catch {
    t.fail(`the line is not JSON: ${result.stdout}`)
  }
  t.same(readdirSync(tmp), [], 'the bench removes its temporary data folder')
  return json
}

function assertResult (t: Test, result: any, dkim: boolean): void {
  t.match(result, {
    recipients: RECIPIENTS,
    dkim,
    accepted: RECIPIENTS,
    duplicates: 0,
    seconds: Number,
    recipientsPerSecond: Number,
    firstAcceptanceSeconds: Number,
    peakRssMB: Number,
    peakHeapMB: Number,
    dataFileMB: Number,
    ceiling: { seconds: Number, recipientsPerSecond: Number },
    ratio: Number
  })
  t.ok(result.seconds > 0, 'seconds > 0')
  t.ok(result.recipientsPerSecond > 0, 'recipientsPerSecond > 0')
  t.ok(result.firstAcceptanceSeconds >= 0 && result.firstAcceptanceSeconds <= result.seconds,
    'the first acceptance comes before the last')
  t.ok(result.peakRssMB > 0, 'peakRssMB > 0')
  t.ok(result.peakHeapMB > 0 && result.peakHeapMB < result.peakRssMB, 'the heap is part of the RSS')
  t.ok(result.dataFileMB > 0, 'the data file holds the ledger')
  t.ok(result.ceiling.recipientsPerSecond > 0, 'ceiling.recipientsPerSecond > 0')
  t.ok(result.ratio > 0, 'ratio > 0')
}

t.test('bench --recipients 300 prints one JSON line: every recipient accepted once, with rates and memory', async (t) => {
  assertResult(t, await bench(t, []), false)
})

t.test('bench --dkim signs every message and still accepts every recipient once', async (t) => {
  assertResult(t, await bench(t, ['--dkim']), true)
})
