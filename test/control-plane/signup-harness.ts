// Test helpers for sign-up: the appliance with its inbound SMTP service and HTTP face (driven
// through inject()), the mails the gateway simulators received for one address, the sign-up
// link in them, and the form posted as a phone's browser posts it.

import type { Test } from 'tap'
import { simpleParser, type ParsedMail } from 'mailparser'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildServer } from '../../control-plane/server.js'
import type { GatewaySimulator } from '../../ops/gateway-simulator.js'
import type { Appliance } from '../../appliance/appliance.js'
import { startAppliance, type Harness } from '../helpers.js'

export const BASE = 'https://mimamori.example.jp'
export const ENTRY = 'entry@mimamori.example.jp'

export interface SignupHarness extends Harness {
  app: FastifyInstance
  port: number
}

export async function startSignup (t: Test, config: Record<string, unknown> = {}): Promise<SignupHarness> {
  const harness = await startAppliance(t, { inbound: true, config })
  const app = await buildServer(harness.appliance)
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { ...harness, app, port: harness.appliance.inboundPort as number }
}

/** Every mail the simulators accepted for the address, parsed, oldest first. */
export async function mailsTo (sims: Record<string, GatewaySimulator>, address: string): Promise<ParsedMail[]> {
  const raw = Object.values(sims).flatMap((s) => s.received)
    .filter((m) => m.rcptTo.some((r) => r.toLowerCase() === address.toLowerCase()))
    .sort((a, b) => a.at - b.at)
  return await Promise.all(raw.map(async (m) => await simpleParser(m.raw as Buffer)))
}

/** The path of the sign-up link in a mail: /signup/<token>. */
export function linkPath (mail: ParsedMail): string {
  const found = /https:\/\/mimamori\.example\.jp(\/signup\/[A-Za-z0-9_-]+)/.exec(mail.text ?? '')
  if (found?.[1] === undefined) throw new Error('no sign-up link in the mail')
  return found[1]
}

/** Hands a mail to the inbound service without SMTP and waits until its answer went out. */
export async function receive (appliance: Appliance, raw: string, from: string, to = ENTRY): Promise<void> {
  await appliance.inbound.receive(Buffer.from(raw.replace(/\r?\n/g, '\r\n')), { from, to: [to] })
  await appliance.inbound.idle()
  await appliance.outbox.idle()
}

/** A plain phone mail to the sign-up address. */
export function entryMail (from: string, options: { to?: string, subject?: string, extra?: string[] } = {}): string {
  return [
    `From: <${from}>`, `To: ${options.to ?? ENTRY}`, ...(options.subject === undefined ? [] : [`Subject: ${options.subject}`]),
    `Message-ID: <${Math.random().toString(36).slice(2)}@phone.example.jp>`, 'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=UTF-8', ...(options.extra ?? []), '', ''
  ].join('\r\n')
}

/** A link for the address, asked for through the inbound service; resolves its path. */
export async function linkFor (h: SignupHarness, address: string, to = ENTRY): Promise<string> {
  await h.appliance.outbox.idle()
  const before = (await mailsTo(h.simulators, address)).length
  await receive(h.appliance, entryMail(address, { to }), address, to)
  const mails = await mailsTo(h.simulators, address)
  if (mails.length !== before + 1) throw new Error(`expected a new link mail, found ${mails.length - before}`)
  return linkPath(mails[mails.length - 1] as ParsedMail)
}

export type Fields = Array<[string, string]>

/** Posts form fields as application/x-www-form-urlencoded, repeated names kept. */
export async function postForm (app: FastifyInstance, url: string, fields: Fields): Promise<LightMyRequestResponse> {
  return await app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams(fields).toString()
  })
}

/** The consent version the form showed (its hidden field). */
export function shownVersion (html: string): string {
  const found = /name="consentVersion" value="([^"]*)"/.exec(html)
  if (found?.[1] === undefined) throw new Error('no consent version in the form')
  return found[1]
}

/** A date `days` from today, YYYY-MM-DD in Tokyo. */
export function daysFromToday (days: number): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Tokyo' }).format(new Date(Date.now() + days * 86_400_000))
}

export function consentEvents (appliance: Appliance): Array<Record<string, unknown>> {
  return [...appliance.store.consent.getRange()].map((e) => e.value as Record<string, unknown>)
}
