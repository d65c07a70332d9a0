// Runs in the appliance: which route a recipient's domain takes — the first configured route
// whose pattern matches, else the default route (a smarthost, or direct delivery to the MX).

import type { Config, DefaultRouteConfig, RouteConfig } from './config.js'

/** What a worker needs to reach one route; the same shape for carrier routes and the default. */
export interface RouteTarget {
  name: string
  mode: 'gateway' | 'smarthost' | 'mx'
  host?: string
  port: number
  maxConnections: number
  messagesPerSecond: number
  recipientsPerSession: number
  connectTimeoutSeconds: number
  /** MX mode: the name servers of the look-ups, when not the system's */
  dnsServers?: string[]
}

interface Matcher { exact?: string, suffix?: string }

export class RouteTable {
  readonly targets: RouteTarget[]
  readonly #matchers: Array<{ target: RouteTarget, matchers: Matcher[] }>
  readonly #cache = new Map<string, RouteTarget>()
  readonly defaultTarget: RouteTarget

  constructor (config: Pick<Config, 'routes' | 'defaultRoute'>) {
    this.#matchers = config.routes.map((route) => ({
      target: gatewayTarget(route),
      matchers: route.domains.map(toMatcher)
    }))
    this.defaultTarget = defaultTarget(config.defaultRoute)
    this.targets = [...this.#matchers.map((m) => m.target), this.defaultTarget]
  }

  /** The route for a (lower-case) domain; cached, since a city has few distinct domains. */
  forDomain (domain: string): RouteTarget {
    const cached = this.#cache.get(domain)
    if (cached !== undefined) return cached
    const found = this.#matchers.find((m) => m.matchers.some((p) => matches(p, domain)))
    const target = found?.target ?? this.defaultTarget
    this.#cache.set(domain, target)
    return target
  }

  byName (name: string): RouteTarget | undefined {
    return this.targets.find((t) => t.name === name)
  }
}

// 'docomo.ne.jp' matches that domain only; '*.ezweb.ne.jp' matches its subdomains;
// '.ezweb.ne.jp' matches the domain and its subdomains.
function toMatcher (pattern: string): Matcher {
  const p = pattern.trim().toLowerCase()
  if (p.startsWith('*.')) return { suffix: p.slice(1) }
  if (p.startsWith('.')) return { exact: p.slice(1), suffix: p }
  return { exact: p }
}

function matches (m: Matcher, domain: string): boolean {
  return domain === m.exact || (m.suffix !== undefined && domain.endsWith(m.suffix))
}

function gatewayTarget (route: RouteConfig): RouteTarget {
  return {
    name: route.name,
    mode: 'gateway',
    host: route.host,
    port: route.port,
    maxConnections: route.maxConnections,
    messagesPerSecond: route.messagesPerSecond,
    recipientsPerSession: route.recipientsPerSession,
    connectTimeoutSeconds: route.connectTimeoutSeconds
  }
}

function defaultTarget (route: DefaultRouteConfig): RouteTarget {
  const target: RouteTarget = {
    name: route.name,
    mode: route.mode,
    port: route.port,
    maxConnections: route.maxConnections,
    messagesPerSecond: route.messagesPerSecond,
    recipientsPerSession: route.recipientsPerSession,
    connectTimeoutSeconds: route.connectTimeoutSeconds
  }
  if (route.host !== undefined) target.host = route.host
  if (route.dnsServers !== undefined) target.dnsServers = [...route.dnsServers]
  return target
}
