// Runs in the appliance's main thread: the pages a recipient reaches from their own message —
// unsubscribe (a page, the RFC 8058 one-click POST, and stopping everything) and read
// confirmation. Phone-sized, no JavaScript; they act on the signed token in the URL, never on
// an address.

import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import type { Appliance } from '../appliance/appliance.js'
import {
  confirmRead, optOut, optOutAll, recipientOf, type RecipientContext
} from '../appliance/recipient-actions.js'
import { parseAddress } from '../appliance/address.js'
import { carrierOf } from '../appliance/carrier-guidance.js'
import { allowedDomain } from '../appliance/signup.js'
import { clearDomainAllow } from '../appliance/bounce-policy.js'
import { inboundAddress } from '../appliance/inbound/local-parts.js'
import { guidance } from './signup-views.js'

interface TokenParams { token: string }

export function publicPages (appliance: Appliance): FastifyPluginAsync {
  return async (app) => {
    // RFC 8058: the one-click POST may come with any body and content type; it is only looked
    // at for the one-click key, never parsed, so no body can make it fail.
    const asText = (_req: unknown, body: Buffer, done: (err: null, text: string) => void): void => {
      done(null, body.toString('latin1'))
    }
    app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 64 * 1024 }, asText)
    app.removeContentTypeParser(['application/json', 'text/plain'])
    app.addContentTypeParser(['application/json', 'text/plain'], { parseAs: 'buffer', bodyLimit: 64 * 1024 }, asText)

    app.get<{ Params: TokenParams }>('/u/:token', async (request, reply) => {
      const context = recipientOf(appliance, request.params.token)
      if (context === undefined) return await invalid(reply)
      const org = escapeHtml(context.organisationName)
      // The second form's action is relative (`<token>/all` from `/u/<token>`), so it holds
      // behind a reverse proxy that serves the appliance under a path of its own.
      return await page(reply, '配信停止 / Unsubscribe', `
        <p>${org} からのメールを停止します。</p>
        <p class="en">Stop mail from ${org}.</p>
        <form method="post"><button type="submit">配信を停止する / Stop</button></form>
        <hr>
        <p>市・学校・園など、<strong>すべての組織</strong>からのメールを停止することもできます。
        災害・防災のお知らせも届かなくなります。</p>
        <p class="en">Or stop all mail from every organisation, disaster warnings included.</p>
        <form method="post" action="${escapeHtml(request.params.token)}/all">
        <button type="submit" class="all">すべての配信を停止する / Stop all mail</button></form>`)
    })

    app.post<{ Params: TokenParams }>('/u/:token/all', async (request, reply) => {
      const context = recipientOf(appliance, request.params.token)
      if (context === undefined) return await invalid(reply)
      optOutAll(appliance, context, 'web')
      const entry = inboundAddress('signup', appliance.config.mailDomain)
      return await page(reply, 'すべての配信を停止しました / Unsubscribed from all', `
        <p>すべての組織からのメールを停止しました。</p>
        <p class="en">You will receive no more mail from any organisation.</p>
        <p>また受け取るときは、${escapeHtml(entry)} に空メールを送って登録してください。</p>
        <p class="en">To receive mail again, send an empty mail to ${escapeHtml(entry)} and sign up.</p>`)
    })

    app.post<{ Params: TokenParams }>('/u/:token', async (request, reply) => {
      const context = recipientOf(appliance, request.params.token)
      if (context === undefined) return await invalid(reply)
      optOut(appliance, context, isOneClick(request.body) ? 'one-click' : 'web')
      return await page(reply, '配信を停止しました / Unsubscribed', `
        <p>${escapeHtml(context.organisationName)} からのメールを停止しました。</p>
        <p class="en">You will receive no more mail from ${escapeHtml(context.organisationName)}.</p>`)
    })

    app.get<{ Params: TokenParams }>('/r/:token', async (request, reply) => {
      const context = recipientOf(appliance, request.params.token)
      if (context === undefined) return await invalid(reply)
      return await page(reply, '開封確認 / Read confirmation', `
        <p><strong>${escapeHtml(context.broadcast.subject)}</strong></p>
        <p>${escapeHtml(context.organisationName)}</p>
        <form method="post"><button type="submit">確認しました / I have read this</button></form>
        ${domainAllowHelp(appliance, context)}`)
    })

    // Confirmation is a deliberate tap (POST): mail apps and scanners fetch links (GET) on their own.
    app.post<{ Params: TokenParams }>('/r/:token', async (request, reply) => {
      const context = recipientOf(appliance, request.params.token)
      if (context === undefined) return await invalid(reply)
      confirmRead(appliance, context)
      // the help is shown once more, since the person may still have to save the setting
      const help = domainAllowHelp(appliance, context)
      clearDomainAllow(appliance, context.subscriber.id)
      return await page(reply, 'ありがとうございました / Thank you', `
        <p>「${escapeHtml(context.broadcast.subject)}」の確認を受け付けました。</p>
        <p class="en">Your confirmation has been recorded.</p>
        ${help}`)
    })
  }
}

// A carrier's domain filter refused some of our mail to this person (bounce-policy.ts flags
// them): the next page they open from a message that did reach them says how to allow it.
function domainAllowHelp (appliance: Appliance, context: RecipientContext): string {
  const current = appliance.directory.subscriber(context.subscriber.id)
  if (current?.needsDomainAllow === undefined) return ''
  const domain = parseAddress(appliance.directory.contact(current).a).domain
  return `<p><strong>受信設定により、届かなかったメールがあります。</strong></p>
        <p class="en">Some of our mail was refused by your carrier's filter.</p>
        ${guidance('ja', allowedDomain(appliance), carrierOf(domain))}`
}

// A mail client's one-click POST names `List-Unsubscribe=One-Click` (form-urlencoded, or as a
// multipart field); the page's own button posts an empty form: a web opt-out.
function isOneClick (body: unknown): boolean {
  return typeof body === 'string' && /List-Unsubscribe\b[^]{0,200}?One-Click/i.test(body)
}

async function invalid (reply: FastifyReply): Promise<FastifyReply> {
  void reply.code(404)
  return await page(reply, 'リンクが無効です / Invalid link', `
    <p>このリンクは無効です。メールに書かれたリンクをもう一度開いてください。</p>
    <p class="en">This link is not valid. Please open the link in your message again.</p>`)
}

async function page (reply: FastifyReply, title: string, body: string): Promise<FastifyReply> {
  void reply.header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'no-referrer')
    .header('x-content-type-options', 'nosniff')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
  return await reply.send(`<!doctype html>
<html lang="ja"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font-family:sans-serif;max-width:32rem;margin:1rem auto;padding:0 1rem;line-height:1.6}
button{font-size:1.1rem;padding:.8rem 1.2rem;width:100%}.en{color:#555;font-size:.9rem}
button.all{background:#fff;border:2px solid #b00;color:#b00}hr{margin:1.5rem 0}</style>
</head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`)
}

export function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
