// Runs as `mimamori send`: submits a broadcast through the running appliance's API (so the
// appliance that owns the ledger sends it) and, with --wait, follows it to the end.

import { request } from 'undici'
import { ERRORS, MimamoriError, type ErrorCode } from '../appliance/errors.js'
import { readOptions } from './cli.js'
import { configFrom, readInputFile } from './data-commands.js'

const PRIORITIES = ['emergency', 'normal', 'bulk']

export async function sendCommand (args: string[]): Promise<void> {
  const { values } = readOptions(args, {
    org: { type: 'string' }, subject: { type: 'string' }, body: { type: 'string' }, 'body-file': { type: 'string' },
    priority: { type: 'string' }, group: { type: 'string', multiple: true }, topic: { type: 'string', multiple: true },
    subscriber: { type: 'string', multiple: true }, url: { type: 'string' }, token: { type: 'string' },
    wait: { type: 'boolean' }
  })
  const token = (values.token as string | undefined) ?? process.env.MIMAMORI_API_TOKEN
  if (typeof values.org !== 'string' || typeof values.subject !== 'string' || token === undefined) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST',
      'send needs --org, --subject, --body or --body-file, and --token (or MIMAMORI_API_TOKEN)')
  }
  if (typeof values.body === 'string' && typeof values['body-file'] === 'string') {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'give --body or --body-file, not both')
  }
  const body = typeof values['body-file'] === 'string' ? readInputFile(values['body-file']).toString('utf8') : values.body
  if (typeof body !== 'string') throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'send needs --body or --body-file')
  const priority = (values.priority as string | undefined) ?? 'normal'
  if (!PRIORITIES.includes(priority)) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `--priority takes one of ${PRIORITIES.join(', ')}`)
  }
  const subscribers = (values.subscriber as string[] | undefined)?.map((id) => {
    if (!/^[1-9]\d*$/.test(id)) throw new MimamoriError('MIMAMORI_BAD_REQUEST', `--subscriber takes a subscriber number, not "${id}"`)
    return Number(id)
  })

  const base = (values.url as string | undefined) ?? defaultUrl(values)
  if (!/^https?:$/.test(URL.parse(base)?.protocol ?? '')) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `--url "${base}" is not an http(s) URL such as http://127.0.0.1:8080`)
  }
  const payload = {
    organisation: values.org,
    subject: values.subject,
    body,
    priority,
    targets: {
      groupPaths: values.group as string[] | undefined,
      topics: values.topic as string[] | undefined,
      subscribers
    }
  }
  const created = await call(base, token, 'POST', '/api/v1/broadcasts', payload) as { id: number, total: number }
  process.stdout.write(`broadcast ${created.id} submitted to ${created.total} recipient(s)\n`)
  if (values.wait === true) await follow(base, token, created.id)
}

function defaultUrl (values: Record<string, unknown>): string {
  const { http } = configFrom(values)
  if (http.port === 0) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'the configuration sets http.port 0 (any free port): give --url')
  }
  return `http://${http.host.includes(':') ? `[${http.host}]` : http.host}:${http.port}`
}

async function call (base: string, token: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  // Relative to the base, so an appliance behind a proxy under a path (https://city.example/mimamori)
  // is reached there and not at the host's root.
  const url = new URL(path.replace(/^\//, ''), base.endsWith('/') ? base : `${base}/`)
  let response: Awaited<ReturnType<typeof request>>
  try {
    response = await request(url, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
  } catch (err) {
    const reason = (err as { code?: string }).code ?? (err as Error).message
    throw new MimamoriError('MIMAMORI_BAD_REQUEST',
      `cannot reach the appliance at ${url.origin} (${reason}); is \`mimamori start\` running there? ` +
      'Give its address with --url', { cause: err })
  }
  const text = await response.body.text()
  let json: { error?: { code?: string, message?: string } }
  try {
    json = JSON.parse(text) as typeof json
  } catch {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST',
      `${url.origin} answered ${response.statusCode} with something other than JSON; is it the appliance?`)
  }
  if (response.statusCode >= 400) {
    // The API's own code is passed on, so a script can tell a bad token from a bad request.
    const code = json.error?.code !== undefined && json.error.code in ERRORS ? json.error.code as ErrorCode : 'MIMAMORI_BAD_REQUEST'
    throw new MimamoriError(code, `the appliance answered ${response.statusCode}: ${json.error?.message ?? text}`)
  }
  return json
}

async function follow (base: string, token: string, id: number): Promise<void> {
  for (;;) {
    const report = await call(base, token, 'GET', `/api/v1/broadcasts/${id}`) as {
      status: string, total: number, counts: Record<string, number>
    }
    const c = report.counts
    process.stdout.write(`${report.status}: ${c.accepted ?? 0}/${report.total} accepted, ${c.failed ?? 0} failed, ` +
      `${c.deferred ?? 0} deferred\n`)
    if (report.status === 'done' || report.status === 'cancelled') return
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }
}
