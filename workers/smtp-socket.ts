// Runs in the delivery workers (and the benchmark's ceiling): the TCP connection under each pooled
// SMTP session, opened with Nagle's algorithm off. nodemailer writes a message and its final
// "." in separate small segments; with Nagle on, the last one waits for the gateway's delayed
// ACK (about 40 ms), which caps a connection at some 20 messages a second.

import net from 'node:net'

type SocketCallback = (err: Error | null, socketOptions?: { connection: net.Socket }) => void

/**
 * True for an error of a connection that never opened: no server saw the message, so it may go
 * to the next MX host at once. A connection lost later may have delivered it: it is deferred.
 */
export function neverConnected (err: unknown): boolean {
  return (err as { neverConnected?: boolean } | undefined)?.neverConnected === true
}

/**
 * A nodemailer `getSocket` option that connects with noDelay, within timeoutMs; `opened` is told
 * of each socket, so that its owner can wait for it to close.
 */
export function noDelaySocket (timeoutMs: number, opened?: (socket: net.Socket) => void) {
  return (options: { host?: string, port?: number }, callback: SocketCallback): void => {
    const socket = net.connect({ host: options.host, port: options.port ?? 25, noDelay: true })
    const timer = setTimeout(() => {
      socket.destroy()
      callback(unreached(new Error('connection timed out'), 'ETIMEDOUT'))
    }, timeoutMs)
    const onError = (err: Error): void => {
      clearTimeout(timer)
      callback(unreached(err, (err as { code?: string }).code ?? 'ECONNECTION'))
    }
    socket.once('error', onError)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.off('error', onError)
      opened?.(socket)
      callback(null, { connection: socket })
    })
  }
}

function unreached (err: Error, code: string): Error {
  return Object.assign(err, { code, neverConnected: true })
}
