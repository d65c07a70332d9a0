// Runs in the appliance's main thread: /healthz for the operator's probes and /metrics in the
// Prometheus text format — ledger states, per-route outcomes, queue depth per lane, the disaster
// feeds' health and the alert drafts.
// A scrape reads only the dispatcher's counters, never the ledger: it stays cheap mid-send.

import type { FastifyPluginAsync } from 'fastify'
import type { Appliance } from '../appliance/appliance.js'
import type { DispatcherMetrics } from '../appliance/dispatcher.js'
import type { RoutePace } from '../appliance/route-pace.js'

type Labels = Record<string, string>
type Sample = [Labels, number]

const ROUTE_COUNTERS: Array<[string, string, (r: RoutePace) => number]> = [
  ['mimamori_route_sent_total', 'Messages accepted by the route\'s gateway.', (r) => r.sent],
  ['mimamori_route_deferred_total', 'Messages deferred (4xx or connection failure).',
    (r) => r.deferred],
  ['mimamori_route_failed_total', 'Messages failed for good: refused (5xx) or given up after the last retry.',
    (r) => r.failed],
  ['mimamori_route_throttled_total', 'Slow-down answers (421, 4.7.x) from the gateway.',
    (r) => r.throttles]
]

export function healthRoutes (appliance: Appliance): FastifyPluginAsync {
  return async (app) => {
    app.get('/healthz', async () => ({
      status: 'ok',
      running: appliance.dispatcher.runningCount,
      workers: appliance.pool.threads.length
    }))

    app.get('/metrics', async (_request, reply) => {
      void reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8')
      return metricsText(appliance)
    })
  }
}

export function metricsText (appliance: Appliance): string {
  const m = appliance.dispatcher.metrics()
  const lines: string[] = []
  ledgerFamilies(lines, m)
  for (const [name, help, value] of ROUTE_COUNTERS) {
    family(lines, name, 'counter', help, m.routes.map((r) => [{ route: r.target.name }, value(r)]))
  }
  family(lines, 'mimamori_route_rate', 'gauge', 'Messages per second allowed now, after slow-downs.',
    m.routes.map((r) => [{ route: r.target.name }, r.rate()]))
  family(lines, 'mimamori_queue_depth', 'gauge',
    'Recipients waiting or in flight, per priority lane, in broadcasts sending or paused.',
    Object.entries(m.lanes).map(([lane, n]) => [{ lane }, n]))
  family(lines, 'mimamori_broadcasts_running', 'gauge', 'Broadcasts sending or paused.',
    [[{}, appliance.dispatcher.runningCount]])
  feedFamilies(lines, appliance)
  return lines.join('\n') + '\n'
}

// A feed that stopped answering must be seen before the next earthquake, not after it.
function feedFamilies (lines: string[], appliance: Appliance): void {
  // JMA feeds are listed only when polled: a feed switched off must not read as a healthy one
  const jma = appliance.config.feeds.jma.enabled ? appliance.feeds.status() : []
  const feeds = [...jma, ...appliance.capFeeds.status()]
  family(lines, 'mimamori_feed_failures', 'gauge', 'Polls of the feed that failed in a row (0: the last one worked).',
    feeds.map((f) => [{ feed: f.url }, f.failures]))
  family(lines, 'mimamori_feed_last_success_seconds', 'gauge',
    'When the feed was last read successfully, in seconds since the epoch (0: never).',
    feeds.map((f) => [{ feed: f.url }, f.lastSuccessAt === undefined ? 0 : Date.parse(f.lastSuccessAt) / 1000]))
  family(lines, 'mimamori_feed_entries_seen_total', 'counter', 'Feed entries recorded (fetched or skipped).',
    feeds.map((f) => [{ feed: f.url }, f.entriesSeen]))
  const states = new Map<string, number>()
  for (const draft of appliance.hazards.drafts()) states.set(draft.state, (states.get(draft.state) ?? 0) + 1)
  family(lines, 'mimamori_alert_drafts', 'gauge', 'Alert drafts made by the alert rules, by state.',
    [...states].map(([state, n]) => [{ state }, n]))
}

// Final states are counters: a finished broadcast's recipients stay counted after it leaves the
// dispatcher. States on the way are gauges over the broadcasts still sending or paused.
function ledgerFamilies (lines: string[], m: DispatcherMetrics): void {
  family(lines, 'mimamori_ledger_recipients', 'gauge',
    'Recipients of broadcasts sending or paused, by ledger state not yet final.',
    Object.entries(m.open).map(([state, n]) => [{ state }, n ?? 0]))
  family(lines, 'mimamori_ledger_final_total', 'counter',
    'Recipients that reached a final ledger state since the appliance started.',
    Object.entries(m.finals).map(([state, n]) => [{ state }, n ?? 0]))
}

function family (
  lines: string[], name: string, type: 'counter' | 'gauge', help: string, samples: Sample[]
): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
  for (const [labels, value] of samples) lines.push(`${name}${labelText(labels)} ${value}`)
}

function labelText (labels: Labels): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`)
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`
}

// Route names are checked at start, but a label value must never break the format.
function escapeLabel (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}
