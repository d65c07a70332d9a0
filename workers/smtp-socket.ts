// Runs in the delivery workers (and the benchmark's ceiling): the TCP connection under each pooled
// SMTP session, opened with Nagle's algorithm off. nodemailer writes a message and its final
// "." in separate small segments; with Nagle on, the last one waits for the gateway's delayed
// ACK (about 40 ms), which caps a connection at some 20 messages a second.

import net from 'node:net'

type SocketCallback = (err: Error | null, socketOptions?: { connection: net.Socket }) => void

/** A nodemailer `getSocket` option that connects with noDelay, within timeoutMs. */
export function noDelaySocket (timeoutMs: number) {
  return (options: { host?: string, port?: number }, callback: SocketCallback): void => {
    const socket = net.connect({ host: options.host, port: options.port ?? 25, noDelay: true })
    const timer = setTimeout(() => {
      socket.destroy()
      callback(Object.assign(new Error('connection timed out'), { code: 'ETIMEDOUT' }))
    }, timeoutMs)
    const onError = (err: Error): void => {
      clearTimeout(timer)
      callback(Object.assign(err, { code: (err as { code?: string }).code ?? 'ECONNECTION' }))
    }
    socket.once('error', onError)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.off('error', onError)
      callback(null, { connection: socket })
    })
  }
}
