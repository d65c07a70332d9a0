// Runs as `mimamori send`: submits a broadcast through the running appliance's API (so the
// appliance that owns the ledger sends it) and, with --wait, follows it to the end.

import { readFileSync } from 'node:fs'
import { request } from 'undici'
import { MimamoriError } from '../appliance/errors.js'
import { readOptions } from './cli.js'
import { configFrom } from './data-commands.js'

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
  const body = typeof values['body-file'] === 'string' ? readFileSync(values['body-file'], 'utf8') : values.body
  if (typeof body !== 'string') throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'send needs --body or --body-file')

  const base = (values.url as string | undefined) ?? defaultUrl(values)
  const payload = {
    organisation: values.org,
    subject: values.subject,
    body,
    priority: (values.priority as string | undefined) ?? 'normal',
    targets: {
      groupPaths: values.group as string[] | undefined,
      topics: values.topic as string[] | undefined,
      subscribers: (values.subscriber as string[] | undefined)?.map(Number)
    }
  }
  const created = await call(base, token, 'POST', '/api/v1/broadcasts', payload) as { id: number, total: number }
  process.stdout.write(`broadcast ${created.id} submitted to ${created.total} recipient(s)\n`)
  if (values.wait === true) await follow(base, token, created.id)
}

function defaultUrl (values: Record<string, unknown>): string {
  const { http } = configFrom(values)
  return `http://${http.host.includes(':') ? `[${http.host}]` : http.host}:${http.port}`
}

async function call (base: string, token: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const response = await request(new URL(path, base), {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const json = await response.body.json() as { error?: { code: string, message: string } }
  if (response.statusCode >= 400) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `the appliance answered ${response.statusCode}: ${json.error?.message ?? ''} (${json.error?.code ?? ''})`)
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
