// Runs in a Piscina worker thread: renders one personal message per recipient from a cached
// per-broadcast template (or one transactional mail of the outbox), signs it, and sends it over
// pooled SMTP connections kept per route.
// It reports one outcome per recipient and decides nothing about retries or suppression.

import { workerData } from 'node:worker_threads'
import { promises as dns } from 'node:dns'
import nodemailer, { type Transporter } from 'nodemailer'
import { AddressVault } from '../appliance/store/address-vault.js'
import { makeToken } from '../appliance/recipient-token.js'
import type { RouteTarget } from '../appliance/route-table.js'
import {
  MessageTemplate, renderSingleMessage, type BroadcastContent, type SingleMessage
} from './message-template.js'
import { DkimSigner } from './dkim-signer.js'
import { accepted, classifyFailure, type Outcome } from './smtp-outcome.js'
import { noDelaySocket } from './smtp-socket.js'

export interface WorkerSetup {
  masterKey: Uint8Array
  /** each worker's share of a route's connections */
  workers: number
  /** the name we give in EHLO: our mail domain */
  heloName: string
  dkim?: { domain: string, selector: string, privateKeyPem: string }
}

export interface SendTask {
  route: RouteTarget
  broadcastId: number
  content: BroadcastContent
  recipients: Array<{ seq: number, sealed: Uint8Array }>
}

const setup = workerData as WorkerSetup
const vault = new AddressVault(Buffer.from(setup.masterKey))
const signer = setup.dkim === undefined ? undefined : new DkimSigner({
  domain: setup.dkim.domain, selector: setup.dkim.selector, privateKey: setup.dkim.privateKeyPem
})
const templates = new Map<number, MessageTemplate>()
const transports = new Map<string, Transporter>()
const mxCache = new Map<string, { host: string, until: number }>()

const activeTasks = new Map<string, number>()

/** A transactional mail from the outbox (appliance/outbox.ts), rendered and signed here. */
export interface SingleSendTask {
  route: RouteTarget
  envelopeFrom: string
  message: SingleMessage
}

export default async function send (task: SendTask): Promise<Outcome[]> {
  const template = templateFor(task)
  const route = task.route
  return await onRoute(route, async () => await inLanes(task.recipients, route.maxConnections,
    async (r) => await sendOne(route, task.broadcastId, template, r)))
}

// A message is rendered only when a lane is free to send it. Rendering a whole batch up front
// queued every message of every task in the pool at once: some 25 MB a worker on a big send.
async function inLanes<T, R> (items: T[], lanes: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      results[i] = await work(items[i] as T)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(items.length, lanes)) }, lane))
  return results
}

/** One transactional mail over the same pooled connections as the broadcasts (seq 0). */
export async function sendSingle (task: SingleSendTask): Promise<Outcome> {
  return await onRoute(task.route, async () => {
    try {
      const unsigned = renderSingleMessage(task.message)
      const raw = signer === undefined ? unsigned : signer.sign(unsigned)
      const transport = await transportFor(task.route, task.message.to)
      const info = await transport.sendMail({
        envelope: { from: task.envelopeFrom, to: [task.message.to] },
        raw
      })
      if (info.rejected.length > 0) return classifyFailure(0, info.rejectedErrors?.[0])
      return accepted(0, info.response)
    } catch (err) {
      return classifyFailure(0, err)
    }
  })
}

async function onRoute<T> (route: RouteTarget, work: () => Promise<T>): Promise<T> {
  activeTasks.set(route.name, (activeTasks.get(route.name) ?? 0) + 1)
  try {
    return await work()
  } finally {
    const left = (activeTasks.get(route.name) ?? 1) - 1
    activeTasks.set(route.name, left)
    // A route allowed fewer connections than there are workers must not keep an idle one open
    // in this worker while another worker sends: close it when this worker has nothing for it.
    if (left === 0 && route.maxConnections < setup.workers) closeRoute(route.name)
  }
}

function closeRoute (name: string): void {
  for (const [key, transport] of transports) {
    if (!key.startsWith(`${name}|`)) continue
    transport.close()
    transports.delete(key)
  }
}

async function sendOne (
  route: RouteTarget, broadcastId: number, template: MessageTemplate, r: SendTask['recipients'][number]
): Promise<Outcome> {
  try {
    const contact = JSON.parse(vault.open(r.sealed)) as { a: string }
    const message = template.render({ to: contact.a, token: makeToken(vault, { broadcastId, seq: r.seq }) })
    const transport = await transportFor(route, contact.a)
    const info = await transport.sendMail({
      envelope: { from: message.envelopeFrom, to: [message.to] },
      raw: message.raw
    })
    if (info.rejected.length > 0) return classifyFailure(r.seq, info.rejectedErrors?.[0])
    return accepted(r.seq, info.response)
  } catch (err) {
    return classifyFailure(r.seq, err)
  }
}

function templateFor (task: SendTask): MessageTemplate {
  let template = templates.get(task.broadcastId)
  if (template === undefined) {
    template = new MessageTemplate(task.content, signer === undefined ? {} : { signer })
    templates.set(task.broadcastId, template)
    if (templates.size > 32) templates.delete(templates.keys().next().value as number)
  }
  return template
}

async function transportFor (route: RouteTarget, address: string): Promise<Transporter> {
  const host = route.mode === 'mx' ? await mxHost(address.slice(address.lastIndexOf('@') + 1)) : route.host
  const key = `${route.name}|${host ?? ''}|${route.port}`
  let transport = transports.get(key)
  if (transport === undefined) {
    transport = nodemailer.createTransport({
      pool: true,
      host,
      port: route.port,
      secure: false,
      maxConnections: Math.max(1, Math.floor(route.maxConnections / setup.workers)),
      maxMessages: route.recipientsPerSession,
      connectionTimeout: route.connectTimeoutSeconds * 1000,
      greetingTimeout: route.connectTimeoutSeconds * 1000,
      socketTimeout: 60_000,
      name: setup.heloName,
      logger: false,
      getSocket: noDelaySocket(route.connectTimeoutSeconds * 1000)
    } as Parameters<typeof nodemailer.createTransport>[0])
    keepEnvelopeVerbatim(transport)
    transports.set(key, transport)
  }
  return transport
}

// Known shortcoming: nodemailer parses the envelope with its address parser, which drops the
// quotes of a quoted local part, and then sends RCPT TO:<taro..yamada.@docomo.ne.jp> — a
// syntax error that strict gateways refuse. Cause: no option to pass the envelope verbatim.
// Quick fix: a 'stream' plugin makes the message report the envelope exactly as we gave it.
// Proper fix: such an option upstream, or our own SMTP client on nodemailer's SMTPConnection.
function keepEnvelopeVerbatim (transport: Transporter): void {
  transport.use('stream', (mail, done) => {
    const given = mail.data.envelope as { from: string, to: string[] } | undefined
    if (given !== undefined) {
      const message = mail.message as unknown as { getEnvelope: () => { from: string, to: string[] } }
      message.getEnvelope = () => ({ from: given.from, to: given.to })
    }
    done()
  })
}

// Direct delivery: the domain's best MX (lowest preference), cached for ten minutes; a domain
// without MX records takes its own name (RFC 5321 5.1).
async function mxHost (domain: string): Promise<string> {
  const cached = mxCache.get(domain)
  if (cached !== undefined && cached.until > Date.now()) return cached.host

  let host = domain
  try {
    const records = await dns.resolveMx(domain)
    records.sort((a, b) => a.priority - b.priority)
    host = records[0]?.exchange ?? domain
  } catch (err) {
    const code = (err as { code?: string }).code
    // A domain that does not exist is a dead address, not a passing failure.
    if (code === 'ENOTFOUND') throw Object.assign(new Error('5.1.2 host not found'), { responseCode: 550, response: '550 5.1.2 host not found' })
    if (code !== 'ENODATA') throw err
  }
  mxCache.set(domain, { host, until: Date.now() + 600_000 })
  return host
}
