// Runs in the appliance's main thread: builds the appliance from its configuration in a fixed
// order (store, directory, routes, workers, dispatcher, HTTP) and tears it down in reverse.

import { readFileSync } from 'node:fs'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Piscina } from 'piscina'
import type { Logger } from 'pino'
import type { FastifyInstance } from 'fastify'
import { type Config, senderAddress } from './config.js'
import { openStore, type Store } from './store/store.js'
import type { AddressVault } from './store/address-vault.js'
import { Directory } from './directory.js'
import { RouteTable } from './route-table.js'
import { BroadcastBook, type Broadcast, type BroadcastInput } from './broadcasts.js'
import { Dispatcher } from './dispatcher.js'
import { countLedger, type LedgerCounts } from './ledger.js'
import { createLogger } from './logger.js'
import { MimamoriError } from './errors.js'
import type { BroadcastContent } from '../workers/message-template.js'
import { buildServer } from '../control-plane/server.js'
import type { WorkerSetup } from '../workers/send-worker.js'
import { DkimSigner } from '../workers/dkim-signer.js'
import { Outbox } from './outbox.js'
import { Inbox } from './inbound/inbox.js'
import { InboundServer } from './inbound/inbound-server.js'
import { registerInboundHandlers } from './inbound/handlers.js'
import { HazardDesk } from './feeds/hazard-desk.js'
import { seedRules } from './feeds/alert-rules.js'
import { FeedPoller } from './feeds/feed-poller.js'
import { CapFeedPoller } from './feeds/cap-feed-poller.js'
import type { HazardEvent } from './feeds/hazard-event.js'
import { Scheduler, scheduleDeps } from './schedules/scheduler.js'
import { StepMail } from './schedules/step-mail.js'

export interface BroadcastReport {
  id: number
  organisationId: string
  subject: string
  priority: Broadcast['priority']
  status: Broadcast['status']
  submittedAt: string
  completedAt?: string
  total: number
  excluded: number
  counts: LedgerCounts['byState']
  routes: LedgerCounts['byRoute']
  firstAcceptedAt?: string
  lastAcceptedAt?: string
}

export class Appliance {
  http?: FastifyInstance
  inboundServer?: InboundServer
  /** where hazard events from the feeds and the CAP endpoint become alerts (feeds/) */
  hazards!: HazardDesk
  /** polls the JMA feeds when feeds.jma.enabled; its status() is on /metrics */
  feeds!: FeedPoller
  /** polls the CAP feeds in feeds.cap.feeds; its status() is on /metrics too */
  capFeeds!: CapFeedPoller
  /** scheduled and repeating broadcasts, and step mail by a child's age (schedules/) */
  scheduler!: Scheduler
  stepMail!: StepMail

  private constructor (
    readonly config: Config,
    readonly log: Logger,
    readonly store: Store,
    readonly vault: AddressVault,
    readonly directory: Directory,
    readonly routes: RouteTable,
    readonly book: BroadcastBook,
    readonly pool: Piscina,
    readonly dispatcher: Dispatcher,
    readonly outbox: Outbox,
    readonly inbound: Inbox
  ) {}

  /** Opens the store, starts the workers and resumes every unfinished broadcast. */
  static open (config: Config, options: { log?: Logger, now?: () => Date } = {}): Appliance {
    const log = options.log ?? createLogger(config.log.level)
    const { store, vault, created } = openStore(config.dataDir, config.keyFile)
    const directory = new Directory(store, vault)
    directory.ensureDefaultTopics()
    const routes = new RouteTable(config)
    const book = new BroadcastBook(store, directory, routes)
    const pool = createPool(config, vault)

    let appliance: Appliance | undefined
    const dispatcher = new Dispatcher({
      store, directory, book, routes, pool, config, log: log.child({ component: 'dispatcher' }),
      contentFor: (b) => (appliance as Appliance).contentFor(b)
    })
    const outbox = new Outbox({
      store, vault, routes, pool, config, log: log.child({ component: 'outbox' }),
      senderName: () => config.sender.name ?? rootOrganisationName(directory)
    })
    const inbound = new Inbox({ store, mailDomain: config.mailDomain, log: log.child({ component: 'inbound' }) })
    appliance = new Appliance(config, log, store, vault, directory, routes, book, pool, dispatcher, outbox, inbound)
    registerInboundHandlers(appliance)
    appliance.hazards = hazardDesk(appliance)
    outbox.start()
    inbound.start()
    const resumed = dispatcher.resumeUnfinished()
    appliance.hazards.start()
    const pollers = feedPollers(appliance)
    appliance.feeds = pollers.feeds
    appliance.capFeeds = pollers.capFeeds
    appliance.feeds.start()
    appliance.capFeeds.start()
    appliance.scheduler = new Scheduler(scheduleDeps(appliance, options.now))
    appliance.stepMail = new StepMail(scheduleDeps(appliance, options.now))
    appliance.scheduler.start()
    appliance.stepMail.start()
    log.info({ dataDir: config.dataDir, created, resumed, routes: routes.targets.map((t) => t.name) },
      'appliance opened')
    return appliance
  }

  /** Starts the HTTP server on the configured address; resolves its base URL. */
  async serve (): Promise<string> {
    this.http = await buildServer(this)
    const url = await this.http.listen({ host: this.config.http.host, port: this.config.http.port })
    await this.listenInbound()
    return url
  }

  /** Starts the inbound SMTP service on config.smtp; resolves its port (serve() calls it). */
  async listenInbound (): Promise<number> {
    if (this.inboundServer !== undefined) return this.inboundServer.port
    const { smtp, mailDomain } = this.config
    this.inboundServer = new InboundServer({
      host: smtp.host,
      port: smtp.port,
      maxMessageBytes: smtp.maxMessageBytes,
      mailDomain,
      inbox: this.inbound,
      vault: this.vault,
      log: this.log.child({ component: 'inbound' })
    })
    return await this.inboundServer.listen()
  }

  /** The port the inbound SMTP service listens on, once started. */
  get inboundPort (): number | undefined {
    return this.inboundServer?.port
  }

  get inboundUrl (): string | undefined {
    const port = this.inboundPort
    return port === undefined ? undefined : `smtp://${this.config.smtp.host}:${port}`
  }

  /**
   * Checks, freezes and starts a broadcast. `claim` runs in the transaction that freezes it: a
   * sender that must send once (a schedule's run) records the send there, or throws to abort.
   */
  submit (input: BroadcastInput, claim?: (broadcast: Broadcast) => void): Broadcast {
    const broadcast = claim === undefined
      ? this.book.submit(input)
      : this.store.root.transactionSync(() => {
        const frozen = this.book.submit(input)
        claim(frozen)
        return frozen
      })
    this.log.info({
      broadcast: broadcast.id, organisation: broadcast.organisationId, priority: broadcast.priority,
      total: broadcast.total, excluded: broadcast.excluded, createdBy: broadcast.createdBy
    }, 'broadcast submitted')
    this.dispatcher.add(broadcast)
    return broadcast
  }

  report (id: number): BroadcastReport {
    const broadcast = this.book.get(id)
    const live = this.dispatcher.live(id)
    const counts = live?.counts ?? broadcast.finalCounts ?? countLedger(this.store, id, broadcast.routes)
    const report: BroadcastReport = {
      id,
      organisationId: broadcast.organisationId,
      subject: broadcast.subject,
      priority: broadcast.priority,
      status: broadcast.status,
      submittedAt: broadcast.submittedAt,
      total: broadcast.total,
      excluded: broadcast.excluded,
      counts: counts.byState,
      routes: counts.byRoute
    }
    if (broadcast.completedAt !== undefined) report.completedAt = broadcast.completedAt
    const first = live?.firstAcceptedAt ?? broadcast.firstAcceptedAt
    const last = live?.lastAcceptedAt ?? broadcast.lastAcceptedAt
    if (first !== undefined) report.firstAcceptedAt = new Date(first).toISOString()
    if (last !== undefined) report.lastAcceptedAt = new Date(last).toISOString()
    return report
  }

  pause (id: number): Broadcast {
    const broadcast = this.requireStatus(id, ['sending'], 'pause')
    this.dispatcher.pause(id)
    return this.book.update(broadcast.id, { status: 'paused' })
  }

  resume (id: number): Broadcast {
    const broadcast = this.requireStatus(id, ['paused'], 'resume')
    const updated = this.book.update(broadcast.id, { status: 'sending' })
    this.dispatcher.resume(id)
    return updated
  }

  cancel (id: number): Broadcast {
    this.requireStatus(id, ['sending', 'paused'], 'cancel')
    this.book.update(id, { cancelRequested: true })
    this.dispatcher.cancel(id)
    return this.book.get(id)
  }

  private requireStatus (id: number, allowed: Array<Broadcast['status']>, action: string): Broadcast {
    const broadcast = this.book.get(id)
    if (!allowed.includes(broadcast.status)) {
      throw new MimamoriError('MIMAMORI_CONFLICT', `a ${broadcast.status} broadcast cannot ${action}`)
    }
    return broadcast
  }

  /** What the workers need to render every message of a broadcast. */
  contentFor (broadcast: Broadcast): BroadcastContent {
    const org = this.directory.organisation(broadcast.organisationId)
    const organisation: BroadcastContent['organisation'] = { name: org.name, postalAddress: org.postalAddress }
    if (org.phone !== undefined) organisation.phone = org.phone
    return {
      broadcastId: String(broadcast.id),
      subject: broadcast.subject,
      body: broadcast.body,
      fromName: org.name,
      fromAddress: senderAddress(this.config),
      organisation,
      mailDomain: this.config.mailDomain,
      baseUrl: this.config.publicBaseUrl.replace(/\/+$/, ''),
      priority: broadcast.priority,
      // Replies and mailto unsubscribes reach the inbound service (inbound/reply-handler.ts).
      repliesRead: true
    }
  }

  /** Waits for a broadcast to finish (tests, the CLI); resolves its final report. */
  async finished (id: number): Promise<BroadcastReport> {
    const done = (): boolean => ['done', 'cancelled'].includes(this.book.get(id).status)
    if (!done()) {
      await new Promise<void>((resolve) => {
        const listener = (b: Broadcast): void => {
          if (b.id !== id) return
          this.dispatcher.off('finished', listener)
          resolve()
        }
        this.dispatcher.on('finished', listener)
      })
    }
    await this.store.root.committed
    return this.report(id)
  }

  async close (): Promise<void> {
    await this.inboundServer?.close()
    await this.http?.close()
    await this.inbound.stop()
    await this.feeds.stop()
    await this.capFeeds.stop()
    this.hazards.stop()
    this.scheduler.stop()
    this.stepMail.stop()
    await this.dispatcher.stop()
    await this.outbox.stop()
    await this.pool.destroy()
    await this.store.close()
    this.log.info('appliance closed')
  }
}

function hazardDesk (appliance: Appliance): HazardDesk {
  seedRules(appliance.store, appliance.config)
  return new HazardDesk({
    store: appliance.store,
    config: appliance.config,
    directory: appliance.directory,
    log: appliance.log.child({ component: 'hazards' }),
    submit: (input) => appliance.submit(input),
    findBroadcast: (createdBy) => appliance.book.list(undefined, 1000).find((b) => b.createdBy === createdBy)
  })
}

// The JMA and the CAP feeds: both hand their events to the hazard desk.
function feedPollers (appliance: Appliance): Pick<Appliance, 'feeds' | 'capFeeds'> {
  const { store, config, log } = appliance
  const ingest = (event: HazardEvent): void => { appliance.hazards.ingest(event) }
  return {
    feeds: new FeedPoller({
      store, config: config.feeds, log: log.child({ component: 'feeds' }), onTelegram: ingest
    }),
    capFeeds: new CapFeedPoller({
      store, config: config.feeds, log: log.child({ component: 'cap-feeds' }), onAlert: ingest
    })
  }
}

// The appliance's own mails (sign-up links, confirmations) go out in the city's name when no
// sender.name is set: the organisation at the top of the tree.
function rootOrganisationName (directory: Directory): string {
  const roots = directory.organisations().filter((o) => o.parentId === undefined)
  return roots.length === 1 ? (roots[0] as { name: string }).name : 'Mimamori'
}

function createPool (config: Config, vault: AddressVault): Piscina {
  const setup: WorkerSetup = {
    masterKey: vault.masterKey,
    workers: config.delivery.workers,
    heloName: config.mailDomain
  }
  if (config.dkim !== undefined) {
    setup.dkim = {
      domain: config.dkim.domain,
      selector: config.dkim.selector,
      privateKeyPem: readDkimKey(config.dkim.keyFile)
    }
    // A bad key must stop start-up here, not fail later inside every worker.
    void new DkimSigner({ ...setup.dkim, privateKey: setup.dkim.privateKeyPem })
  }
  return new Piscina({
    filename: workerFile(),
    minThreads: config.delivery.workers,
    maxThreads: config.delivery.workers,
    concurrentTasksPerWorker: 64,
    idleTimeout: Number.MAX_SAFE_INTEGER,
    // A worker's garbage is short-lived message buffers; a small young generation keeps each
    // thread's memory near 30 MB instead of growing toward V8's defaults.
    resourceLimits: { maxYoungGenerationSizeMb: 8 },
    workerData: setup
  })
}

function readDkimKey (file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new MimamoriError('MIMAMORI_DKIM_KEY_INVALID', `cannot read the DKIM key ${file}`, { cause: err })
  }
}

// From source (tests) the worker is the .ts file beside the compiled path; tap's loader follows
// the thread, since workers inherit the parent's execArgv.
function workerFile (): string {
  const ext = extname(fileURLToPath(import.meta.url))
  return fileURLToPath(new URL(`../workers/send-worker${ext}`, import.meta.url))
}
