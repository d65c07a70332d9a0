// Runs in the appliance's main thread: the public sign-up pages — ask for a link by address
// (/signup), and the one-time link's form (/signup/<token>). Phone-sized, no JavaScript,
// Japanese by default with an English switch; every rule lives in appliance/signup*.ts.
//
// CSRF: the form pages act on the secret one-time token in their URL. A cross-site page cannot
// forge a POST to /signup/<token> without knowing the token, and POST /signup only mails a link
// to the address given, which the attacker could as well type in themselves.

import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import formbody from '@fastify/formbody'
import type { Appliance } from '../appliance/appliance.js'
import { maskAddress, parseAddress, type ParsedAddress } from '../appliance/address.js'
import { carrierOf } from '../appliance/carrier-guidance.js'
import { MimamoriError } from '../appliance/errors.js'
import { inboundAddress } from '../appliance/inbound/local-parts.js'
import {
  allowedDomain, openSignupLink, requestSignupLink, resolveCode, type LinkState, type OpenedLink
} from '../appliance/signup.js'
import {
  completeSignup, formDefaults, membershipLines, type SignupChoices, type SignupProblem
} from '../appliance/signup-completion.js'
import { CONSENT_VERSION, consentText, type Language } from '../appliance/signup-texts.js'
import {
  addressForm, donePage, invalidLinkPage, sendPage, sentPage, signupForm, type OrganisationView
} from './signup-views.js'
import { words } from './signup-words.js'

type Form = Record<string, string | string[] | undefined>
interface Query { lang?: string, code?: string }
interface TokenParams { token: string }

export function signupPages (appliance: Appliance): FastifyPluginAsync {
  const entry = inboundAddress('signup', appliance.config.mailDomain)
  const allow = allowedDomain(appliance)

  return async (app) => {
    // A sign-up form is a few kilobytes; anything far larger is not one.
    await app.register(formbody, { bodyLimit: 64 * 1024 })

    app.get<{ Querystring: Query }>('/signup', async (request, reply) => {
      const lang = languageOf(request.query.lang)
      const code = codeOf(appliance, request.query.code)
      const switchQuery = code === undefined ? '' : `code=${encodeURIComponent(code)}&`
      return await sendPage(reply, lang, words(lang).signupTitle,
        addressForm(lang, { entry, allowDomain: allow, code }), { switchQuery })
    })

    // Known shortcoming: limited per address (signup.linksPerHour) but not per client, so one
    // client can have links mailed to many addresses. Proper fix: a per-client rate limit
    // (@fastify/rate-limit) together with the panel's security plugins.
    app.post<{ Querystring: Query, Body: Form }>('/signup', async (request, reply) => {
      const lang = languageOf(request.query.lang)
      const form = request.body ?? {}
      const typed = first(form.address).slice(0, 300)
      const code = codeOf(appliance, first(form.code))
      let address: ParsedAddress
      try {
        address = parseAddress(typed)
      } catch {
        const again = addressForm(lang, { entry, allowDomain: allow, value: typed, error: true, code })
        return await sendPage(reply, lang, words(lang).signupTitle, again, { status: 400 })
      }
      requestSignupLink(appliance, address, code)
      return await sendPage(reply, lang, words(lang).sentTitle, sentPage(lang, {
        masked: maskAddress(address.canonical),
        minutes: appliance.config.signup.linkMinutes,
        allowDomain: allow,
        carrier: carrierOf(address.domain)
      }))
    })

    app.get<{ Params: TokenParams, Querystring: Query }>('/signup/:token', async (request, reply) => {
      const lang = languageOf(request.query.lang)
      let opened: OpenedLink
      try {
        opened = openSignupLink(appliance, request.params.token)
      } catch (err) {
        return await invalid(reply, lang, linkState(err), '')
      }
      const choices = formDefaults(appliance, opened, lang)
      return await showForm(reply, lang, opened, choices, [], { switchQuery: '' })
    })

    type TokenPost = { Params: TokenParams, Querystring: Query, Body: Form }
    app.post<TokenPost>('/signup/:token', async (request, reply) => {
      const lang = languageOf(request.query.lang)
      const { token } = request.params
      const choices = readChoices(request.body ?? {})
      try {
        const subscriber = completeSignup(appliance, token, choices)
        const subLang: Language = subscriber.language === 'en' ? 'en' : 'ja'
        const lines = membershipLines(appliance, subscriber.id)
        const carrier = carrierOf(subscriber.domain)
        return await sendPage(reply, subLang, words(subLang).doneTitle,
          donePage(subLang, { entry, allowDomain: allow, carrier, lines }))
      } catch (err) {
        if (!(err instanceof MimamoriError) || err.code !== 'MIMAMORI_SIGNUP_INVALID') {
          return await invalid(reply, lang, linkState(err), undefined)
        }
        let opened: OpenedLink
        try {
          opened = openSignupLink(appliance, token)
        } catch (closed) {
          return await invalid(reply, lang, linkState(closed), undefined)
        }
        const problems = (err.details as { problems: SignupProblem[] }).problems
        return await showForm(reply, lang, opened, choices, problems, { status: 400 })
      }
    })
  }

  async function showForm (
    reply: FastifyReply, lang: Language, opened: OpenedLink, choices: SignupChoices,
    problems: SignupProblem[], options: { status?: number, switchQuery?: string }
  ): Promise<FastifyReply> {
    const { directory } = appliance
    const body = signupForm(lang, {
      masked: maskAddress(opened.address.canonical),
      organisations: organisationViews(appliance),
      topics: directory.topics().map((t) => ({ id: t.id, name: lang === 'en' ? t.nameEn : t.name })),
      choices,
      problems,
      consentVersion: CONSENT_VERSION,
      consentText: consentText(CONSENT_VERSION, lang) ?? '',
      carrier: carrierOf(opened.address.domain),
      allowDomain: allow
    })
    return await sendPage(reply, lang, words(lang).formTitle, body, options)
  }

  async function invalid (
    reply: FastifyReply, lang: Language, state: LinkState, switchQuery: string | undefined
  ): Promise<FastifyReply> {
    const options = switchQuery === undefined ? { status: 410 } : { status: 410, switchQuery }
    const body = invalidLinkPage(lang, state, entry, allow)
    return await sendPage(reply, lang, words(lang).invalidTitle, body, options)
  }
}

/** Only a refused link becomes a page; anything else is a real failure for the error handler. */
function linkState (err: unknown): LinkState {
  if (err instanceof MimamoriError && err.code === 'MIMAMORI_SIGNUP_LINK_INVALID') {
    return (err.details as { state: LinkState }).state
  }
  throw err
}

function languageOf (value: unknown): Language {
  return value === 'en' ? 'en' : 'ja'
}

function codeOf (appliance: Appliance, value: unknown): string | undefined {
  return typeof value === 'string' && value.length <= 100 ? resolveCode(appliance, value) : undefined
}

function list (value: string | string[] | undefined): string[] {
  if (value === undefined) return []
  return Array.isArray(value) ? value : [value]
}

function first (value: string | string[] | undefined): string {
  return list(value)[0] ?? ''
}

/** The form's fields as the appliance reads them; `pw.<group id>` carries a group password. */
function readChoices (form: Form): SignupChoices {
  const passwords: Record<string, string> = Object.create(null) as Record<string, string>
  for (const [name, value] of Object.entries(form)) {
    const password = first(value)
    if (name.startsWith('pw.') && password !== '') passwords[name.slice(3)] = password
  }
  return {
    organisations: list(form.org),
    groups: list(form.group),
    passwords,
    topics: list(form.topic),
    language: first(form.language),
    children: list(form.child),
    consentVersion: first(form.consentVersion)
  }
}

/** Organisations in tree order (the city first, then what lies below it), with their groups. */
function organisationViews (appliance: Appliance): OrganisationView[] {
  const { directory } = appliance
  const all = directory.organisations()
  const ordered: typeof all = []
  const visit = (parentId: string | undefined): void => {
    for (const org of all.filter((o) => o.parentId === parentId)) {
      ordered.push(org)
      visit(org.id)
    }
  }
  visit(undefined)
  return ordered.map((org) => ({
    id: org.id,
    name: org.name,
    groups: directory.groups(org.id)
      .map((g) => ({
        id: g.id, path: directory.groupPath(g.id), protected: g.passwordHash !== undefined
      }))
      .sort((a, b) => a.path.localeCompare(b.path, 'ja', { numeric: true }))
  }))
}
