// Runs in the appliance's main thread: mail to reply+<token>@, the Reply-To of every message.
// The token names the recipient and the broadcast. 退会 / 配信停止 / stop opts the person out of
// the organisation that sent it, at once, and a short confirmation says how to sign up again;
// 確認 / はい / ok confirms reading; anything else is kept for the organisation to read. An
// auto-reply is kept but never acts and is never answered. Each reply is handled once: its row
// in `replies`, written in the same transaction as what it did, marks it done.

import type { Appliance } from '../appliance.js'
import { confirmRead, optOut, recipientOf, type RecipientContext } from '../recipient-actions.js'
import { inboundAddress } from './local-parts.js'
import type { InboundMail } from './inbox.js'
import { replyIntent } from './reply-keywords.js'

export type ReplyAction = 'opt-out' | 'read' | 'none'

/** A recipient's reply as the organisation's panel lists it; never the address in clear. */
export interface StoredReply {
  inboundId: number
  broadcastId: number
  seq: number
  subscriberId: number
  receivedAt: string
  subject: string
  text: string
  action: ReplyAction
  autoSubmitted: boolean
}

const MAX_TEXT = 20_000
const MAX_SUBJECT = 500

export function replyHandler (appliance: Appliance): (mail: InboundMail) => Promise<void> {
  return async (mail) => { handleReply(appliance, mail) }
}

export function handleReply (appliance: Appliance, mail: InboundMail): void {
  const context = recipientOf(appliance, mail.tag ?? '')
  if (context === undefined) {
    appliance.log.child({ component: 'inbound' }).warn({ inbound: mail.id }, 'reply to an unknown recipient token dropped')
    return
  }
  const key = replyKey(context, mail)
  const done = appliance.store.root.transactionSync(() => {
    if (appliance.store.replies.get(key) !== undefined) return undefined
    const action = act(appliance, context, mail)
    appliance.store.replies.putSync(key, storedReply(context, mail, action))
    return action
  })
  if (done === undefined) return
  appliance.log.child({ component: 'inbound' }).info({
    inbound: mail.id, broadcast: context.broadcast.id, subscriber: context.subscriber.id, action: done,
    auto: mail.mail.autoSubmitted
  }, 'reply handled')
}

/** The organisation's replies, newest first. */
export function listReplies (appliance: Appliance, organisationId: string, limit = 50): StoredReply[] {
  const range = appliance.store.replies.getRange({
    start: [organisationId, Number.MAX_SAFE_INTEGER], end: [organisationId, 0], reverse: true, limit
  })
  return [...range].map((e) => e.value as StoredReply)
}

function replyKey (context: RecipientContext, mail: InboundMail): [string, number, number] {
  return [context.broadcast.organisationId, Date.parse(mail.receivedAt), mail.id]
}

function act (appliance: Appliance, context: RecipientContext, mail: InboundMail): ReplyAction {
  // An auto-responder's "I am away" must neither unsubscribe anyone nor get an answer.
  if (mail.mail.autoSubmitted) return 'none'
  const intent = replyIntent(mail.mail.text, mail.mail.subject)
  if (intent.kind === 'stop') {
    optOut(appliance, context, 'reply')
    confirmOptOut(appliance, context, mail)
    return 'opt-out'
  }
  if (intent.kind === 'read') {
    confirmRead(appliance, context)
    return 'read'
  }
  return 'none'
}

function confirmOptOut (appliance: Appliance, context: RecipientContext, mail: InboundMail): void {
  const { subscriber, organisationName, broadcast } = context
  const signup = inboundAddress('signup', appliance.config.mailDomain, broadcast.organisationId)
  const english = subscriber.language === 'en'
  const text = english
    ? [`You will receive no more mail from ${organisationName}.`, '',
        'To receive it again, send an empty mail to:', signup]
    : [`${organisationName} からのメールの配信を停止しました。`, '',
        'もう一度受け取るには、次のアドレスに空メールを送ってください。', signup]
  const out: Parameters<typeof appliance.outbox.enqueue>[0] = {
    to: appliance.directory.contact(subscriber).a,
    subject: english ? 'Unsubscribed' : '配信停止を受け付けました',
    text: text.join('\n'),
    purpose: 'opt-out-confirmation',
    fromName: organisationName,
    references: [...mail.mail.references, ...(mail.mail.messageId === undefined ? [] : [mail.mail.messageId])]
  }
  if (mail.mail.messageId !== undefined) out.inReplyTo = mail.mail.messageId
  appliance.outbox.enqueue(out)
}

function storedReply (context: RecipientContext, mail: InboundMail, action: ReplyAction): StoredReply {
  return {
    inboundId: mail.id,
    broadcastId: context.broadcast.id,
    seq: context.seq,
    subscriberId: context.subscriber.id,
    receivedAt: mail.receivedAt,
    subject: mail.mail.subject.slice(0, MAX_SUBJECT),
    text: mail.mail.text.slice(0, MAX_TEXT),
    action,
    autoSubmitted: mail.mail.autoSubmitted
  }
}
