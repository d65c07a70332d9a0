// How the gateway simulator answers each RCPT TO: rules by recipient, then seeded random
// refusals. Kept apart from the SMTP plumbing so the decision can be read in one place.

export interface SimulatorRule {
  /** regular expression source tested (case-insensitive) against the recipient as received */
  match: string
  /** SMTP reply code to answer at RCPT TO (e.g. 421, 451, 452, 550, 552) */
  code: number
  /** reply text, e.g. '5.1.1 User unknown'; a default per code when absent */
  message?: string
  /** answer this only the first N times for a given recipient, then let it through */
  times?: number
}

export interface RecipientRuleOptions {
  rules?: readonly SimulatorRule[]
  deferRate?: number
  rejectRate?: number
  seed?: number
  requireQuoting?: boolean
}

export interface Refusal {
  code: number
  message: string
}

/** The rules in force when `rules` is not given; spread them to extend rather than replace. */
export const DEFAULT_RULES: readonly SimulatorRule[] = Object.freeze([
  { match: '^"?busy', code: 421, message: '4.7.0 Too many messages, try again later' },
  { match: '^"?tempfail', code: 451, message: '4.3.0 Temporary failure, try again later' },
  { match: '^"?full', code: 452, message: '4.2.2 Mailbox full' },
  { match: '^"?(unknown|permfail)', code: 550, message: '5.1.1 User unknown' },
  { match: '^"?blocked', code: 550, message: '5.7.1 Rejected by the recipient\'s domain filter' }
])

const DEFAULT_TEXT: Record<number, string> = {
  421: '4.7.0 Try again later, closing connection',
  450: '4.2.1 Mailbox unavailable, try again later',
  451: '4.3.0 Temporary failure, try again later',
  452: '4.2.2 Mailbox full',
  550: '5.1.1 User unknown',
  552: '5.2.2 Mailbox full',
  553: '5.1.3 Bad recipient address syntax',
  554: '5.7.1 Transaction failed'
}

// A local part with `..` or a dot at either end is only valid quoted (RFC 5321 4.1.2).
const UNQUOTED_LEGACY = /^(?!")(?:\.|[^@]*\.\.|[^@]*\.@)/

interface CompiledRule extends Refusal {
  index: number
  pattern: RegExp
  times: number | undefined
}

export function defaultReplyText (code: number): string {
  return DEFAULT_TEXT[code] ?? (code < 500 ? '4.0.0 Temporary failure' : '5.0.0 Permanent failure')
}

function compile (rule: SimulatorRule, index: number): CompiledRule {
  if (!Number.isInteger(rule.code) || rule.code < 400 || rule.code > 599) {
    throw new RangeError(`simulator rule ${index}: code ${rule.code} is not a 4xx or 5xx reply`)
  }
  return {
    index,
    pattern: new RegExp(rule.match, 'i'),
    code: rule.code,
    message: rule.message ?? defaultReplyText(rule.code),
    times: rule.times
  }
}

function checkRate (name: string, value: number | undefined): number {
  const rate = value ?? 0
  if (!(rate >= 0 && rate <= 1)) throw new RangeError(`${name} must be between 0 and 1`)
  return rate
}

/** mulberry32: small, fast and seedable, so a run with the same seed refuses the same ones. */
function seededRandom (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = Math.imul(state ^ (state >>> 15), state | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

export class RecipientRules {
  private readonly rules: CompiledRule[]
  private readonly deferRate: number
  private readonly rejectRate: number
  private readonly seed: number
  private readonly requireQuoting: boolean
  private random: () => number
  private hits = new Map<string, number>()

  constructor (options: RecipientRuleOptions) {
    this.rules = (options.rules ?? DEFAULT_RULES).map(compile)
    this.deferRate = checkRate('deferRate', options.deferRate)
    this.rejectRate = checkRate('rejectRate', options.rejectRate)
    this.seed = options.seed ?? 1
    this.requireQuoting = options.requireQuoting === true
    this.random = seededRandom(this.seed)
  }

  /** The refusal for this recipient (as written in RCPT TO), or undefined to accept it. */
  answer (recipient: string): Refusal | undefined {
    if (this.requireQuoting && UNQUOTED_LEGACY.test(recipient)) {
      return { code: 553, message: '5.1.3 Bad recipient address syntax, quote the local part' }
    }
    return this.matchRule(recipient) ?? this.randomRefusal()
  }

  /** Forgets the `times` counts and restarts the random sequence from the seed. */
  reset (): void {
    this.hits = new Map()
    this.random = seededRandom(this.seed)
  }

  private matchRule (recipient: string): Refusal | undefined {
    for (const rule of this.rules) {
      if (!rule.pattern.test(recipient)) continue
      if (rule.times === undefined) return rule

      // Once a rule has answered its `times`, the recipient falls through to the next rules.
      const key = `${rule.index}\u0000${recipient}`
      const hits = this.hits.get(key) ?? 0
      if (hits >= rule.times) continue
      this.hits.set(key, hits + 1)
      return rule
    }
    return undefined
  }

  private randomRefusal (): Refusal | undefined {
    if (this.deferRate === 0 && this.rejectRate === 0) return undefined
    const draw = this.random()
    if (draw < this.deferRate) return { code: 451, message: defaultReplyText(451) }
    if (draw >= this.deferRate + this.rejectRate) return undefined
    return { code: 550, message: defaultReplyText(550) }
  }
}
