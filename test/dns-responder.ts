// Test helper: a tiny authoritative DNS server on 127.0.0.1 UDP port 0 that answers MX, A and
// AAAA from a table, so that direct (MX) delivery is tested without the real network.
//   - a name in the table answers its records of the asked type, or none (NOERROR, no data);
//   - a name not in the table answers NXDOMAIN;
//   - a name listed in `failing` answers SERVFAIL.

import { createSocket, type RemoteInfo } from 'node:dgram'
import { once } from 'node:events'
import type { Test } from 'tap'
import dnsPacket, { type Answer, type Question } from 'dns-packet'

export interface Zone {
  [name: string]: { MX?: Array<{ preference: number, exchange: string }>, A?: string[], AAAA?: string[] }
}

export interface DnsResponder {
  /** "127.0.0.1:PORT", as defaultRoute.dnsServers takes it */
  server: string
  /** every question asked, as "TYPE name" */
  asked: string[]
}

const NXDOMAIN = 3
const SERVFAIL = 2

export async function startDnsResponder (t: Test, zone: Zone, failing: string[] = []): Promise<DnsResponder> {
  const socket = createSocket('udp4')
  const asked: string[] = []
  socket.on('message', (message: Buffer, peer: RemoteInfo) => {
    const query = dnsPacket.decode(message)
    const question = query.questions?.[0]
    if (question === undefined) return
    asked.push(`${question.type} ${question.name}`)
    const reply = answer(zone, failing, question, query.id ?? 0)
    socket.send(reply, peer.port, peer.address)
  })
  socket.bind(0, '127.0.0.1')
  await once(socket, 'listening')
  t.teardown(() => { socket.close() })
  return { server: `127.0.0.1:${socket.address().port}`, asked }
}

function answer (zone: Zone, failing: string[], question: Question, id: number): Buffer {
  const name = question.name.toLowerCase()
  const entry = zone[name]
  let rcode = 0
  if (failing.includes(name)) rcode = SERVFAIL
  else if (entry === undefined) rcode = NXDOMAIN

  const answers: Answer[] = []
  const base = { name: question.name, ttl: 60, class: 'IN' as const }
  if (rcode === 0 && question.type === 'MX') {
    for (const data of entry?.MX ?? []) answers.push({ ...base, type: 'MX', data })
  }
  if (rcode === 0 && (question.type === 'A' || question.type === 'AAAA')) {
    for (const data of entry?.[question.type] ?? []) answers.push({ ...base, type: question.type, data })
  }
  return dnsPacket.encode({
    type: 'response',
    id,
    flags: dnsPacket.AUTHORITATIVE_ANSWER | rcode,
    questions: [question],
    answers
  })
}
