// Runs in the appliance: one GET of a feed or a telegram, bounded in time and size, answered as
// a typed outcome rather than an exception — the poller decides what a failure means.

import { request, type Dispatcher } from 'undici'

export interface RequestLimits {
  userAgent: string
  timeoutMs: number
  maxBytes: number
}

export type DocumentResponse =
  | { outcome: 'ok', body: Buffer, etag?: string, lastModified?: string }
  | { outcome: 'not-modified' }
  /** transient: worth asking again later (network, timeout, 5xx, 429); else never */
  | { outcome: 'failed', transient: boolean, reason: string }

/** GETs a document; `conditional` carries the validators of the copy we already read. */
export async function requestDocument (
  dispatcher: Dispatcher, url: string, limits: RequestLimits,
  conditional: { etag?: string, lastModified?: string } = {}
): Promise<DocumentResponse> {
  const headers: Record<string, string> = {
    'user-agent': limits.userAgent, accept: 'application/xml'
  }
  const { etag, lastModified } = conditional
  if (etag !== undefined) headers['if-none-match'] = etag
  if (lastModified !== undefined) headers['if-modified-since'] = lastModified
  try {
    const res = await request(url, {
      dispatcher,
      headers,
      signal: AbortSignal.timeout(limits.timeoutMs),
      headersTimeout: limits.timeoutMs,
      bodyTimeout: limits.timeoutMs
    })
    if (res.statusCode !== 200) {
      await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined)
      return res.statusCode === 304 ? { outcome: 'not-modified' } : httpFailure(res.statusCode)
    }
    const body = await readBounded(res.body, limits.maxBytes, res.headers['content-length'])
    if (body === undefined) {
      return { outcome: 'failed', transient: false, reason: `larger than ${limits.maxBytes} bytes` }
    }
    const validators = {
      etag: header(res.headers.etag), lastModified: header(res.headers['last-modified'])
    }
    return { outcome: 'ok', body, ...validators }
  } catch (err) {
    return { outcome: 'failed', transient: true, reason: reasonOf(err) }
  }
}

function httpFailure (status: number): DocumentResponse {
  const transient = status >= 500 || status === 429 || status === 408
  return { outcome: 'failed', transient, reason: `HTTP ${status}` }
}

// Stops reading (and drops the connection) as soon as the limit is passed: a runaway response
// never fills memory.
async function readBounded (
  body: Dispatcher.ResponseData['body'], maxBytes: number, declared: string | string[] | undefined
): Promise<Buffer | undefined> {
  if (Number(header(declared) ?? 0) > maxBytes) {
    // an unread body destroyed reports the abort as an error; nobody else is listening for it
    body.on('error', () => undefined).destroy()
    return undefined
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += (chunk as Buffer).length
    if (size > maxBytes) {
      body.destroy()
      return undefined
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

function header (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

function reasonOf (err: unknown): string {
  const e = err as { name?: string, code?: string, message?: string }
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out'
  return e.code ?? e.message ?? String(err)
}
