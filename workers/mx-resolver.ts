// Runs in the delivery workers: where direct delivery (the default route in MX mode) takes a
// domain's mail — its MX hosts by preference, each resolved to the addresses to connect to, or
// the domain's own address when it has no MX (RFC 5321 5.1). Answers are kept ten minutes.

import { Resolver } from 'node:dns/promises'
import type { MxRecord } from 'node:dns'
import { selfReply } from './smtp-outcome.js'

/** One address to try, with the host name it stands for (the TLS server name). */
export interface MxDestination { address: string, name: string }

const TTL_MS = 600_000
// A look-up waits at most 2 × 3 s: a message waiting on DNS holds a connection lane.
const TIMEOUT_MS = 3000
const TRIES = 2

// Answers that mean "no such record", as opposed to a failing name server.
const NO_RECORD = new Set(['ENODATA', 'ENOTFOUND'])

export class MxResolver {
  readonly #resolver = new Resolver({ timeout: TIMEOUT_MS, tries: TRIES })
  readonly #cache = new Map<string, { destinations: MxDestination[], until: number }>()

  constructor (servers?: readonly string[]) {
    if (servers !== undefined && servers.length > 0) this.#resolver.setServers([...servers])
  }

  /**
   * Where to deliver mail for the domain, best first. Throws a self-reply for a domain that
   * takes no mail (5.1.2, 5.1.10) and the resolver's error when a name server fails, so that
   * the message is deferred and tried again rather than the address given up.
   */
  async destinations (domain: string): Promise<MxDestination[]> {
    const cached = this.#cache.get(domain)
    if (cached !== undefined && cached.until > Date.now()) return cached.destinations
    const destinations = await this.lookUp(domain)
    this.#cache.set(domain, { destinations, until: Date.now() + TTL_MS })
    if (this.#cache.size > 10_000) this.#cache.delete(this.#cache.keys().next().value as string)
    return destinations
  }

  private async lookUp (domain: string): Promise<MxDestination[]> {
    const records = await this.mx(domain)
    if (records === undefined) {
      // No MX: the domain itself is the mail host (the "implicit MX").
      const own = (await this.addresses(domain)).map((address) => ({ address, name: domain }))
      if (own.length === 0) throw selfReply(550, '5.1.2 host not found: no MX and no address')
      return own
    }
    // RFC 7505: a single MX of "." says the domain accepts no mail at all.
    if (records.some((r) => r.exchange === '' || r.exchange === '.')) {
      throw selfReply(556, '5.1.10 the domain accepts no mail (null MX)')
    }

    const out: MxDestination[] = []
    for (const { exchange } of [...records].sort((a, b) => a.priority - b.priority)) {
      for (const address of await this.addresses(exchange)) out.push({ address, name: exchange })
    }
    if (out.length === 0) throw selfReply(451, '4.4.3 no address for the domain\'s MX hosts')
    return out
  }

  /** The MX records, or undefined when the domain exists without any. */
  private async mx (domain: string): Promise<MxRecord[] | undefined> {
    try {
      return await this.#resolver.resolveMx(domain)
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'ENODATA') return undefined
      // A domain that does not exist is a dead address, not a passing failure.
      if (code === 'ENOTFOUND') throw selfReply(550, '5.1.2 host not found')
      throw err
    }
  }

  /** IPv4 addresses first, then IPv6; none when the name has neither. */
  private async addresses (name: string): Promise<string[]> {
    const v4 = await this.#resolver.resolve4(name).catch(noRecord)
    if (v4.length > 0) return v4
    return await this.#resolver.resolve6(name).catch(noRecord)
  }
}

function noRecord (err: unknown): string[] {
  if (NO_RECORD.has((err as { code?: string }).code ?? '')) return []
  throw err
}
