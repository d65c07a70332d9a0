// Runs in the appliance's main thread: /healthz for the operator's probes and /metrics in the
// Prometheus text format — ledger states, per-route outcomes, queue depth per lane.

import type { FastifyPluginAsync } from 'fastify'
import type { Appliance } from '../appliance/appliance.js'
import { LEDGER_STATES } from '../appliance/ledger.js'

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
  const lines: string[] = []
  const { routes, lanes } = appliance.dispatcher.metrics()

  lines.push('# HELP mimamori_ledger_recipients Recipients of running broadcasts by ledger state.')
  lines.push('# TYPE mimamori_ledger_recipients gauge')
  const states = Object.fromEntries(LEDGER_STATES.map((s) => [s, 0]))
  for (const b of appliance.book.unfinished()) {
    const live = appliance.dispatcher.live(b.id)
    if (live === undefined) continue
    for (const s of LEDGER_STATES) states[s] = (states[s] ?? 0) + live.counts.byState[s]
  }
  for (const [state, n] of Object.entries(states)) lines.push(`mimamori_ledger_recipients{state="${state}"} ${n}`)

  const counters: Array<[string, string, (r: typeof routes[number]) => number]> = [
    ['mimamori_route_sent_total', 'Messages accepted by the route\'s gateway.', (r) => r.sent],
    ['mimamori_route_deferred_total', 'Messages deferred (4xx or connection failure).', (r) => r.deferred],
    ['mimamori_route_failed_total', 'Messages refused permanently (5xx).', (r) => r.failed],
    ['mimamori_route_throttled_total', 'Slow-down answers (421, 4.7.x) from the gateway.', (r) => r.throttles]
  ]
  for (const [name, help, value] of counters) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`)
    for (const r of routes) lines.push(`${name}{route="${r.target.name}"} ${value(r)}`)
  }
  lines.push('# HELP mimamori_route_rate Messages per second allowed now, after slow-downs.')
  lines.push('# TYPE mimamori_route_rate gauge')
  for (const r of routes) lines.push(`mimamori_route_rate{route="${r.target.name}"} ${r.rate()}`)

  lines.push('# HELP mimamori_queue_depth Recipients waiting or in flight, per priority lane.')
  lines.push('# TYPE mimamori_queue_depth gauge')
  for (const [lane, n] of Object.entries(lanes)) lines.push(`mimamori_queue_depth{lane="${lane}"} ${n}`)
  return lines.join('\n') + '\n'
}
