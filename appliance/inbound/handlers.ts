// Runs in the appliance's main thread: which handler takes each kind of inbound mail. Called once
// from Appliance.open, before the inbox takes up the mail a crash left; each feature adds its
// registration line here.

import type { Appliance } from '../appliance.js'
import { maskAddress } from '../address.js'
import { replyHandler } from './reply-handler.js'
import { bounceHandler } from './bounce-handler.js'
import { registerCommandMail } from './command-mail.js'
import { signupHandler } from '../signup.js'

export function registerInboundHandlers (appliance: Appliance): void {
  appliance.inbound.on('signup', signupHandler(appliance))
  appliance.inbound.on('reply', replyHandler(appliance))
  appliance.inbound.on('bounce', bounceHandler(appliance))
  registerCommandMail(appliance)
  // postmaster@ and abuse@ must exist (RFC 5321, RFC 2142); bounces of the outbox's mail come
  // back to postmaster@ too. The appliance has no mailbox to keep them in: one line each, with
  // no subject, which may name an address.
  appliance.inbound.on('postmaster', async (mail) => {
    const from = mail.envelopeFrom === '' ? '<>' : maskAddress(mail.envelopeFrom)
    appliance.log.child({ component: 'inbound' }).info({ inbound: mail.id, from, bytes: mail.raw.length }, 'postmaster mail received')
  })
}
