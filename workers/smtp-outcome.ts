// Runs in the delivery workers: every SMTP answer or failure becomes one small typed outcome —
// accepted, deferred or rejected, with a category. The appliance decides what follows from it.

export type OutcomeKind = 'accepted' | 'deferred' | 'rejected'

export type OutcomeCategory =
  | 'ok'
  /** 421 or 4.7.x: the gateway asks us to slow down */
  | 'throttled'
  /** other 4xx: try again later */
  | 'temporary'
  /** the connection failed or dropped before an answer */
  | 'connection'
  /** 5.1.x: the mailbox or host does not exist */
  | 'no-mailbox'
  /** 5.7.x: refused by policy, often a carrier's domain filter (ドメイン指定受信) */
  | 'blocked'
  /** other 5xx */
  | 'permanent'

export interface Outcome {
  seq: number
  kind: OutcomeKind
  category: OutcomeCategory
  code?: number
  /** the gateway's reply, shortened: it may echo the address, so it never goes to the logs */
  message?: string
  /** when the gateway answered (epoch ms); a batch reports back only when all of it is done */
  at?: number
}

interface SmtpErrorLike {
  code?: string
  responseCode?: number
  response?: string
  message?: string
}

const ENHANCED = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/

export function accepted (seq: number, response: string | undefined): Outcome {
  const code = Number.parseInt(response ?? '250', 10)
  return { seq, kind: 'accepted', category: 'ok', code: Number.isNaN(code) ? 250 : code, at: Date.now() }
}

/**
 * An answer the worker gives itself, in a gateway's words, when no server could be asked: a
 * domain that does not exist is "550 5.1.2", as a relay would say. classifyFailure reads it.
 */
export function selfReply (code: number, text: string): Error & SmtpErrorLike {
  return Object.assign(new Error(text), { responseCode: code, response: `${code} ${text}` })
}

/** Classifies a failure reported by nodemailer for one recipient. */
export function classifyFailure (seq: number, error: unknown): Outcome {
  const err = (error ?? {}) as SmtpErrorLike
  const text = shorten(err.response ?? err.message ?? 'unknown error')
  const code = typeof err.responseCode === 'number' ? err.responseCode : undefined

  if (code === undefined || code < 400) {
    return { seq, kind: 'deferred', category: 'connection', message: text }
  }

  const enhanced = ENHANCED.exec(text)
  if (code < 500 && closedIdle(code, text, enhanced)) {
    return { seq, kind: 'deferred', category: 'connection', code, message: text }
  }
  if (code < 500) {
    const throttled = code === 421 || (enhanced?.[1] === '4' && enhanced[2] === '7')
    return { seq, kind: 'deferred', category: throttled ? 'throttled' : 'temporary', code, message: text }
  }

  let category: OutcomeCategory = 'permanent'
  if (enhanced?.[2] === '1' && ['1', '2', '3', '10'].includes(enhanced[3] ?? '')) category = 'no-mailbox'
  else if (enhanced?.[2] === '7') category = 'blocked'
  return { seq, kind: 'rejected', category, code, message: text }
}

// A 421 that says the session timed out (4.4.2, or "timeout") is the gateway closing a
// connection left idle, not a request to slow down: the route keeps its pace.
function closedIdle (code: number, text: string, enhanced: RegExpExecArray | null): boolean {
  if (code !== 421) return false
  return (enhanced?.[2] === '4' && enhanced[3] === '2') || /time[d\s-]?out/i.test(text)
}

function shorten (text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim()
  return oneLine.length > 200 ? `${oneLine.slice(0, 197)}...` : oneLine
}
