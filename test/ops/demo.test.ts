// `mimamori demo` as a first-time operator runs it: a sample city, one alert sent through local
// gateway simulators, a per-route table, an HTTP server that answers, and nothing left behind
// after Ctrl+C. TMPDIR points into the test folder, so the demo's temporary folder lands there.

import t from 'tap'
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { existsSync, readdirSync } from 'node:fs'
import { request } from 'undici'
import { startCli, runCli } from './cli-process.js'

const SUBSCRIBERS = 200
// The demo adds four problem addresses to the synthetic subscribers: a dead mailbox, a carrier
// filter, a mailbox that always answers 451, and a legacy docomo address that goes out quoted.
const TOTAL = SUBSCRIBERS + 4

interface RouteRow { route: string, accepted: number, failed: number, deferred: number, suppressed: number, received: number }

function routeTable (stdout: string): RouteRow[] {
  const rows: RouteRow[] = []
  const table = stdout.slice(stdout.indexOf('  route      accepted'))
  for (const match of table.matchAll(/^ {2}([a-z]+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+)$/gm)) {
    const [accepted, failed, deferred, suppressed, received] = match.slice(2).map(Number) as number[]
    rows.push({ route: match[1] as string, accepted, failed, deferred, suppressed, received } as RouteRow)
  }
  return rows
}

t.test('demo sends the sample alert, prints a per-route table that adds up and its URLs, serves /healthz, and Ctrl+C removes its data', async (t) => {
  const tmp = t.testdir()
  const demo = startCli(t, ['demo', '--subscribers', String(SUBSCRIBERS), '--port', '0'], { cwd: tmp, env: { TMPDIR: tmp } })
  const [, url] = await demo.waitForStdout(/The appliance keeps serving at (http:\/\/127\.0\.0\.1:(\d+)) /, 80_000)
  const out = demo.stdout()

  t.match(out, /^Mimamori demo\n/)
  t.match(out, `sample city: 松山市 — 3 schools, a kindergarten, the fire department, ${TOTAL} subscribers`)
  t.notMatch(url, /:0$/, 'the printed URL carries the port actually bound, not 0')
  t.match(out, `  health:   ${url as string}/healthz\n`)
  t.match(out, `  metrics:  ${url as string}/metrics\n`)
  const dataDir = /data folder \(temporary\): (\S+)\n/.exec(out)?.[1] ?? ''
  t.ok(dataDir.startsWith(tmp) && existsSync(dataDir), 'the temporary data folder exists while the demo runs')
  const token = /\(admin token — Authorization: Bearer (mmr_\S+)\)/.exec(out)?.[1] ?? ''

  const progress = out.match(/^ {2}(sending|done) +accepted \d+\/\d+ +deferred \d+ +failed \d+$/gm) ?? []
  t.ok(progress.length > 0, 'progress lines were printed')
  t.ok(progress.every((line) => line.includes(`/${TOTAL} `)), `progress counts out of ${TOTAL}`)

  const final = new RegExp(`^Broadcast (\\d+): done — (\\d+) of ${TOTAL} accepted \\(first after \\d+ ms, last after \\d+ ms\\)$`, 'm').exec(out)
  t.ok(final, 'the final line says done')
  const rows = routeTable(out)
  t.same(rows.map((r) => r.route), ['docomo', 'au', 'softbank', 'default'])
  const sum = (key: keyof Omit<RouteRow, 'route'>): number => rows.reduce((n, r) => n + r[key], 0)
  t.equal(sum('accepted') + sum('failed') + sum('deferred') + sum('suppressed'), TOTAL, 'every recipient is in the table once')
  t.equal(sum('accepted'), Number(final?.[2]), 'the table agrees with the final line')
  t.equal(sum('accepted'), TOTAL - 3, 'all but the dead, the filtered and the always-busy address were accepted')
  t.equal(sum('failed'), 3)
  for (const row of rows) t.equal(row.received, row.accepted, `${row.route}: the gateway received what the ledger accepted`)
  t.match(out, /^ {2}un\*\*\*@docomo\.ne\.jp +failed \(550\), 1 attempt\(s\) +a mailbox that does not exist: suppressed/m)
  t.match(out, /^ {2}bl\*\*\*@ezweb\.ne\.jp +failed \(550\), 1 attempt\(s\) +the carrier's domain filter: not suppressed/m)
  t.match(out, /^ {2}te\*\*\*@softbank\.ne\.jp +failed \(451\), 3 attempt\(s\) +a gateway that keeps answering 451/m)
  t.match(out, /^ {2}ta\*\*\*@docomo\.ne\.jp +accepted \(250\), 1 attempt\(s\) +a pre-2009 carrier address/m)
  t.notMatch(out, /unknown\.user@|blocked\.filter@|tempfail\.busy@|taro\.\.yamada/, 'no problem address in clear')
  t.match(out, /inbound mail \(sign-up, replies, bounces, mail-in commands\): smtp:\/\/127\.0\.0\.1:\d+\n/)
  t.equal(new Set(progress).size, progress.length, 'a progress line is printed only when it changes')

  const health = await request(`${url as string}/healthz`)
  t.equal(health.statusCode, 200)
  t.match(await health.body.json(), { status: 'ok' })
  const broadcast = await request(`${url as string}/api/v1/broadcasts/${final?.[1] ?? ''}`, { headers: { authorization: `Bearer ${token}` } })
  t.match(await broadcast.body.json(), { status: 'done', total: TOTAL }, 'the printed token works on the printed API')

  demo.child.kill('SIGINT')
  const exit = await demo.exited
  t.equal(exit.code, 0, 'Ctrl+C stops the demo with exit code 0')
  t.equal(exit.stderr, '')
  t.notOk(existsSync(dataDir), 'the temporary data folder is removed')
  t.same(readdirSync(tmp), [], 'nothing is left in the temporary folder')
})

t.test('demo on a port already in use exits 1 clearly and leaves no temporary folder', async (t) => {
  const tmp = t.testdir()
  const blocker = createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.teardown(() => { blocker.close() })
  const port = (blocker.address() as AddressInfo).port

  const result = await runCli(t, ['demo', '--subscribers', '10', '--port', String(port)], { cwd: tmp, env: { TMPDIR: tmp } })
  t.equal(result.code, 1)
  t.match(result.stderr, `mimamori: port ${port} on 127.0.0.1 is in use; give another --port (0 takes any free port) (MIMAMORI_CONFLICT)`)
  t.notMatch(result.stderr, /\n\s+at /, 'no stack trace')
  t.same(readdirSync(tmp), [], 'no temporary folder is left behind')
})

t.test('demo refuses a --port or --subscribers that is not a whole number before it starts anything', async (t) => {
  const tmp = t.testdir()
  const port = await runCli(t, ['demo', '--port', 'http'], { cwd: tmp, env: { TMPDIR: tmp } })
  t.equal(port.code, 1)
  t.match(port.stderr, '--port takes a whole number from 0 to 65535 (MIMAMORI_BAD_REQUEST)')
  const count = await runCli(t, ['demo', '--subscribers', 'many', '--port', '0'], { cwd: tmp, env: { TMPDIR: tmp } })
  t.equal(count.code, 1)
  t.match(count.stderr, '--subscribers takes a whole number')
  t.same(readdirSync(tmp), [], 'no temporary folder was made')
})
