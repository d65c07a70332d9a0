// Test helper: a local stand-in for the JMA feed server on 127.0.0.1:0. It serves the fixture
// feeds with their entry links rewritten to itself, answers conditional requests with 304, and
// counts every request.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import type { Test } from 'tap'

export const fixture = (path: string): string =>
  readFileSync(new URL(`../../fixtures/jma-xml/${path}`, import.meta.url), 'utf8')

/** What a path answers: a document (200, or 304 when the client has it), a status, or no answer. */
export type Answer =
  | string
  | { status: number, body?: string, chunked?: boolean, headers?: Record<string, string> }
  | 'hang'

export interface Served { path: string, status: number, conditional: boolean }

export class JmaFeedServer {
  readonly requests: Served[] = []
  readonly routes = new Map<string, () => Answer>()
  /** answer 200 even to a request for a copy the client has (a publisher that ignores ETags) */
  ignoreConditionals = false
  base = ''
  readonly #server = createServer((req, res) => { this.answer(req, res) })
  readonly #hanging = new Set<ServerResponse>()

  static async start (t: Test): Promise<JmaFeedServer> {
    const server = new JmaFeedServer()
    server.#server.listen(0, '127.0.0.1')
    await once(server.#server, 'listening')
    t.teardown(async () => { await server.close() })
    server.base = `http://127.0.0.1:${(server.#server.address() as { port: number }).port}`
    return server
  }

  /** A fixture feed with its entry links pointing here. */
  localFeed (text: string): string {
    const jma = /https?:\/\/www\.data\.jma\.go\.jp\/developer\/xml\/data\//g
    return text.replace(jma, `${this.base}/data/`)
  }

  count (predicate: (r: Served) => boolean): number {
    return this.requests.filter(predicate).length
  }

  async close (): Promise<void> {
    for (const res of this.#hanging) res.destroy()
    this.#server.closeAllConnections()
    await new Promise((resolve) => this.#server.close(resolve))
  }

  private answer (req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '/'
    const { 'if-none-match': ifNoneMatch, 'if-modified-since': ifModifiedSince } = req.headers
    const conditional = ifNoneMatch !== undefined || ifModifiedSince !== undefined
    const route = this.routes.get(path)
    const answer: Answer = route === undefined ? { status: 404 } : route()
    if (answer === 'hang') {
      this.#hanging.add(res)
      this.requests.push({ path, status: 0, conditional })
      return
    }
    const { status, body, chunked, headers } =
      typeof answer === 'string' ? { status: 200, body: answer } : answer
    const etag = `"${createHash('sha1').update(body ?? '').digest('hex').slice(0, 16)}"`
    const fresh = !this.ignoreConditionals && status === 200 && ifNoneMatch === etag
    this.requests.push({ path, status: fresh ? 304 : status, conditional })
    if (fresh) {
      res.writeHead(304, { etag }).end()
      return
    }
    const length = chunked === true ? {} : { 'content-length': Buffer.byteLength(body ?? '') }
    const lastModified = new Date(0).toUTCString()
    res.writeHead(status, {
      'content-type': 'application/xml', etag, 'last-modified': lastModified, ...length, ...headers
    })
    // written in two pieces, the length is not announced: only counting the bytes finds it
    if (chunked === true && body !== undefined) res.write(body.slice(0, body.length / 2))
    res.end(chunked === true ? body?.slice(body.length / 2) : body)
  }
}
