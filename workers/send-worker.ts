// Runs in a Piscina worker thread: renders one personal message per recipient from a cached
// per-broadcast template (or one transactional mail of the outbox), signs it, and sends it over
// pooled SMTP connections kept per route.
// It reports one outcome per recipient and decides nothing about retries or suppression.

import { workerData } from 'node:worker_threads'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import nodemailer, { type Transporter } from 'nodemailer'
import { AddressVault } from '../appliance/store/address-vault.js'
import { makeToken } from '../appliance/recipient-token.js'
import type { RouteTarget } from '../appliance/route-table.js'
import {
  MessageTemplate, renderSingleMessage, type BroadcastContent, type SingleMessage
} from './message-template.js'
import { DkimSigner } from './dkim-signer.js'
import { accepted, classifyFailure, type Outcome } from './smtp-outcome.js'
import { neverConnected, noDelaySocket } from './smtp-socket.js'
import { MxResolver } from './mx-resolver.js'

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
/** the open sockets of each transport, by the same key */
const sockets = new Map<string, Set<Socket>>()
// How long a task's end waits for the connections it closes to go; then they are cut.
const CLOSE_WAIT_MS = 1000
const resolvers = new Map<string, MxResolver>()

const activeTasks = new Map<string, number>()
/** when this worker last finished a task on each route */
const lastUsed = new Map<string, number>()
/**
 * Pooled connections idle longer than this are closed before the next task uses them. Gateways
 * close idle sessions (often after 30 to 60 s) with a 421; a message sent on such a connection
 * as the 421 arrives is deferred, which once held an emergency back for the retry delay.
 */
const IDLE_REUSE_MS = 15_000

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
      return await deliver(task.route, 0, { from: task.envelopeFrom, to: task.message.to }, raw)
    } catch (err) {
      return classifyFailure(0, err)
    }
  })
}

async function onRoute<T> (route: RouteTarget, work: () => Promise<T>): Promise<T> {
  const idle = (activeTasks.get(route.name) ?? 0) === 0 &&
    Date.now() - (lastUsed.get(route.name) ?? Date.now()) > IDLE_REUSE_MS
  if (idle) await closeRoute(route.name)
  activeTasks.set(route.name, (activeTasks.get(route.name) ?? 0) + 1)
  try {
    return await work()
  } finally {
    const left = (activeTasks.get(route.name) ?? 1) - 1
    activeTasks.set(route.name, left)
    lastUsed.set(route.name, Date.now())
    // A route allowed fewer connections than there are workers must not keep an idle one open
    // in this worker while another worker sends: close it when this worker has nothing for it.
    // MX connections go too: one per destination host adds up over a city's many domains, and
    // an idle worker thread sleeps (Piscina's Atomics wait) and could not close them later. So
    // an appliance that stops, having waited for its tasks, leaves none open.
    if (left === 0 && (route.maxConnections < setup.workers || route.mode === 'mx')) {
      await closeRoute(route.name)
    }
  }
}

// The close must be done before the task returns: a worker without tasks sleeps, and a socket
// closed by a sleeping thread would stay open until its next task.
async function closeRoute (name: string): Promise<void> {
  const closing: Socket[] = []
  for (const [key, transport] of transports) {
    if (!key.startsWith(`${name}|`)) continue
    transport.close()
    transports.delete(key)
    closing.push(...(sockets.get(key) ?? []))
    sockets.delete(key)
  }
  const open = closing.filter((socket) => !socket.destroyed)
  if (open.length === 0) return
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, CLOSE_WAIT_MS) })
  await Promise.race([Promise.all(open.map(async (socket) => await once(socket, 'close'))), late])
  clearTimeout(timer)
  for (const socket of open) socket.destroy()
}

async function sendOne (
  route: RouteTarget, broadcastId: number, template: MessageTemplate, r: SendTask['recipients'][number]
): Promise<Outcome> {
  try {
    const contact = JSON.parse(vault.open(r.sealed)) as { a: string }
    const ref = { broadcastId, seq: r.seq }
    const message = template.render({
      to: contact.a, token: makeToken(vault, ref), bounceToken: makeToken(vault, ref, 'bounce')
    })
    return await deliver(route, r.seq, { from: message.envelopeFrom, to: message.to }, message.raw)
  } catch (err) {
    return classifyFailure(r.seq, err)
  }
}

/** Sends one message; in MX mode on to the next host when one cannot be reached at all. */
async function deliver (
  route: RouteTarget, seq: number, envelope: { from: string, to: string }, raw: Buffer
): Promise<Outcome> {
  const hosts = await destinations(route, envelope.to.slice(envelope.to.lastIndexOf('@') + 1))
  const smtpEnvelope = { from: envelope.from, to: [envelope.to] }
  for (const [i, host] of hosts.entries()) {
    const transport = transportFor(route, host)
    try {
      const info = await transport.sendMail({ envelope: smtpEnvelope, raw })
      if (info.rejected.length > 0) return classifyFailure(seq, info.rejectedErrors?.[0])
      return accepted(seq, info.response)
    } catch (err) {
      if (neverConnected(err)) retire(route, host, transport)
      // Once connected, a server may hold the message already: only an unreached host is skipped.
      if (!unreached(err) || i === hosts.length - 1) throw err
    }
  }
  throw new Error('no destination to deliver to')
}

// nodemailer fails the messages still queued in a pool it closes with this: none was sent.
const POOL_CLOSED = 'Connection pool was closed'

function unreached (err: unknown): boolean {
  return neverConnected(err) || (err as Error | undefined)?.message === POOL_CLOSED
}

// Known shortcoming: nodemailer's pool keeps a connection whose getSocket failed as busy for
// ever, so a host that refused once would starve its pool in this worker. Cause: the pool
// resource returns that error without the 'error' event that removes it. Quick fix: the
// transport is dropped and closed, and the next message opens a new one. Proper fix: upstream,
// or our own pool on nodemailer's SMTPConnection (see keepEnvelopeVerbatim).
function retire (route: RouteTarget, host: Destination, transport: Transporter): void {
  const key = transportKey(route, host)
  if (transports.get(key) === transport) transports.delete(key)
  transport.close()
}

interface Destination { host?: string, name?: string }

async function destinations (route: RouteTarget, domain: string): Promise<Destination[]> {
  if (route.mode !== 'mx') return [route.host === undefined ? {} : { host: route.host }]
  const servers = route.dnsServers ?? []
  let resolver = resolvers.get(servers.join(','))
  if (resolver === undefined) {
    resolver = new MxResolver(servers)
    resolvers.set(servers.join(','), resolver)
  }
  return (await resolver.destinations(domain.toLowerCase())).map((d) => ({ host: d.address, name: d.name }))
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

function transportKey (route: RouteTarget, destination: Destination): string {
  return `${route.name}|${destination.host ?? ''}|${route.port}`
}

function transportFor (route: RouteTarget, destination: Destination): Transporter {
  const key = transportKey(route, destination)
  let transport = transports.get(key)
  if (transport === undefined) {
    transport = nodemailer.createTransport({
      pool: true,
      host: destination.host,
      port: route.port,
      secure: false,
      // MX hosts are reached by address: STARTTLS checks the certificate against the MX name.
      ...(destination.name === undefined ? {} : { servername: destination.name }),
      maxConnections: Math.max(1, Math.floor(route.maxConnections / setup.workers)),
      maxMessages: route.recipientsPerSession,
      connectionTimeout: route.connectTimeoutSeconds * 1000,
      greetingTimeout: route.connectTimeoutSeconds * 1000,
      socketTimeout: 60_000,
      name: setup.heloName,
      logger: false,
      getSocket: noDelaySocket(route.connectTimeoutSeconds * 1000, (socket) => track(key, socket))
    } as Parameters<typeof nodemailer.createTransport>[0])
    keepEnvelopeVerbatim(transport)
    transports.set(key, transport)
  }
  return transport
}

function track (key: string, socket: Socket): void {
  const open = sockets.get(key) ?? new Set<Socket>()
  sockets.set(key, open)
  open.add(socket)
  socket.once('close', () => open.delete(socket))
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
