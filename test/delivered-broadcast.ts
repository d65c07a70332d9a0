// Test helper: subscribers, a broadcast delivered to the gateway simulators, and what each
// recipient's own message carries back to the appliance — its Reply-To and its return path.

import { simpleParser } from 'mailparser'
import type { Appliance } from '../appliance/appliance.js'
import { parseAddress } from '../appliance/address.js'
import type { GatewaySimulator } from '../ops/gateway-simulator.js'

export interface Received {
  /** the Reply-To of the recipient's message: reply+<token>@… */
  replyTo: string
  /** the envelope sender of the recipient's message: bounce+<token>@… */
  returnPath: string
  token: string
  messageId: string
  subject: string
}

export function subscribe (appliance: Appliance, organisationId: string, address: string): number {
  const { subscriber } = appliance.directory.upsertSubscriber({ address: parseAddress(address) })
  appliance.directory.addMembership(subscriber.id, organisationId)
  return subscriber.id
}

/** Sends a broadcast, waits for it, and reads each recipient's message from the simulators. */
export async function deliver (
  appliance: Appliance, simulators: Record<string, GatewaySimulator>, organisationId: string,
  subject = '【連絡】明日の下校時刻'
): Promise<{ broadcastId: number, total: number, excluded: number, byAddress: Map<string, Received> }> {
  const broadcast = appliance.submit({
    organisationId, subject, body: '明日は14時に下校します。', priority: 'normal', targets: {}, createdBy: 'test'
  })
  await appliance.finished(broadcast.id)
  const byAddress = new Map<string, Received>()
  for (const simulator of Object.values(simulators)) {
    for (const message of simulator.received) {
      if (!message.raw?.includes(`Message-ID: <${broadcast.id}.`)) continue
      const parsed = await simpleParser(message.raw)
      const replyTo = parsed.replyTo?.value[0]?.address ?? ''
      const token = /^bounce\+([A-Za-z0-9_-]+)@/.exec(message.mailFrom)?.[1] ?? ''
      byAddress.set((message.rcptTo[0] ?? '').replace(/"/g, ''), {
        replyTo, returnPath: message.mailFrom, token, messageId: parsed.messageId ?? '', subject: parsed.subject ?? ''
      })
    }
  }
  return { broadcastId: broadcast.id, total: broadcast.total, excluded: broadcast.excluded, byAddress }
}
