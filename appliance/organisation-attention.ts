// Runs in the appliance: what an organisation's staff should look at after a broadcast — the
// replies its recipients wrote, and the members a carrier's domain filter (ドメイン指定受信)
// refused, who must be told how to allow our mail. Addresses are always masked here.

import type { Appliance } from './appliance.js'
import { maskAddress } from './address.js'
import { listReplies, type StoredReply } from './inbound/reply-handler.js'

export interface ReplyView extends Omit<StoredReply, 'seq'> {
  /** the sender, masked: `ta***@docomo.ne.jp` */
  from: string
}

export interface DomainFilteredMember {
  subscriberId: number
  address: string
  carrier: string
  since: string
  reason: string
  source: 'dsn' | 'smtp'
}

/** The organisation's replies, newest first, at most `limit`. */
export function organisationReplies (appliance: Appliance, organisationId: string, limit: number): ReplyView[] {
  appliance.directory.organisation(organisationId)
  return listReplies(appliance, organisationId, limit).map(({ seq: _seq, ...reply }) => ({
    ...reply,
    from: maskedAddressOf(appliance, reply.subscriberId)
  }))
}

/** Members of the organisation (and those below it) whose carrier refused our domain. */
export function domainFilteredMembers (appliance: Appliance, organisationId: string): DomainFilteredMember[] {
  const { directory } = appliance
  directory.organisation(organisationId)
  const out: DomainFilteredMember[] = []
  for (const id of directory.membersOfOrganisations([organisationId])) {
    const subscriber = directory.subscriber(id)
    const flag = subscriber?.needsDomainAllow
    if (subscriber === undefined || flag === undefined || subscriber.status !== 'active') continue
    out.push({
      subscriberId: id,
      address: maskAddress(directory.contact(subscriber).a),
      carrier: subscriber.domain,
      since: flag.at,
      reason: flag.reason,
      source: flag.source
    })
  }
  return out.sort((a, b) => a.since.localeCompare(b.since))
}

function maskedAddressOf (appliance: Appliance, subscriberId: number): string {
  const subscriber = appliance.directory.subscriber(subscriberId)
  return subscriber === undefined ? '***' : maskAddress(appliance.directory.contact(subscriber).a)
}
