// Runs in the appliance's main thread: the HTML of the sign-up pages. Phone-sized, no
// JavaScript, one page per language; the same look as the other public pages. Every value from
// the store or the request is escaped where it is placed.

import type { FastifyReply } from 'fastify'
import { CARRIERS, carrierGuidance, type Carrier } from '../appliance/carrier-guidance.js'
import type { Language } from '../appliance/signup-texts.js'
import type { SignupChoices, SignupProblem } from '../appliance/signup-completion.js'
import type { LinkState } from '../appliance/signup.js'
import { escapeHtml as h } from './public-pages.js'
import { problemText, words } from './signup-words.js'

export interface OrganisationView {
  id: string
  name: string
  groups: Array<{ id: string, path: string, protected: boolean }>
}

export interface FormModel {
  masked: string
  organisations: OrganisationView[]
  topics: Array<{ id: string, name: string }>
  choices: SignupChoices
  problems: SignupProblem[]
  consentVersion: string
  consentText: string
  carrier: Carrier
  allowDomain: string
}

// The public pages' rules (public-pages.ts), plus what a form needs: fields, boxes to tap.
const STYLE = [
  'body{font-family:sans-serif;max-width:32rem;margin:1rem auto;padding:0 1rem;line-height:1.6}',
  'button{font-size:1.1rem;padding:.8rem 1.2rem;width:100%}.en{color:#555;font-size:.9rem}',
  'nav{text-align:right}fieldset{border:1px solid #ccc;margin:1rem 0;padding:.5rem .8rem}',
  'label{display:block;padding:.35rem 0}summary{font-weight:bold;padding:.4rem 0}',
  'input[type=checkbox],input[type=radio]{transform:scale(1.3);margin-right:.6rem}',
  'input[type=email],input[type=password],input[type=date]{font-size:1rem;padding:.5rem;',
  'width:100%;box-sizing:border-box}.hint{color:#555;font-size:.9rem}',
  '.problems{border:2px solid #b00020;color:#b00020;padding:.5rem .8rem}',
  '.consent{background:#f4f4f4;padding:.5rem .8rem}'
].join('')

/** Sends a whole page with the headers of the public pages. */
export async function sendPage (
  reply: FastifyReply, lang: Language, title: string, body: string,
  options: { status?: number, switchQuery?: string } = {}
): Promise<FastifyReply> {
  const other: Language = lang === 'ja' ? 'en' : 'ja'
  // A page that answers a POST offers no switch: fetching its address again would not show it.
  const href = `?${options.switchQuery ?? ''}lang=${other}`
  const nav = options.switchQuery === undefined
    ? ''
    : `<nav><a href="${h(href)}" lang="${other}">${h(words(lang).switchTo)}</a></nav>`
  void reply.code(options.status ?? 200).header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'no-referrer')
    .header('x-content-type-options', 'nosniff')
    .header('content-security-policy',
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
  return await reply.send(`<!doctype html>
<html lang="${lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${h(title)}</title><style>${STYLE}</style></head><body>
${nav}<h1>${h(title)}</h1>${body}</body></html>`)
}

/** ドメイン指定受信: the person's carrier open, the others folded (all folded if unknown). */
export function guidance (lang: Language, allowDomain: string, carrier?: Carrier): string {
  const w = words(lang)
  const block = (c: Carrier, open: boolean): string => {
    const g = carrierGuidance(c, allowDomain)
    const steps = g.steps[lang].map((s) => `<li>${h(s)}</li>`).join('')
    const summary = `<summary>${h(g.name[lang])}</summary>`
    return `<details${open ? ' open' : ''}>${summary}<ol>${steps}</ol></details>`
  }
  const others = CARRIERS.filter((c) => c !== carrier).map((c) => block(c, false)).join('')
  const rest = carrier === undefined ? others : `<p class="hint">${h(w.otherCarriers)}</p>${others}`
  const own = carrier === undefined ? '' : block(carrier, true)
  return `<section><h2>${h(w.guidanceTitle)}</h2><p>${h(w.guidanceIntro(allowDomain))}</p>` +
    `${own}${rest}<p class="hint">${h(w.guidanceUrl)}</p></section>`
}

export function addressForm (lang: Language, model: {
  entry: string, allowDomain: string, value?: string, error?: boolean, code?: string
}): string {
  const w = words(lang)
  const error = model.error === true
    ? `<p class="problems" role="alert">${h(w.badAddress)}</p>`
    : ''
  const code = model.code === undefined
    ? ''
    : `<input type="hidden" name="code" value="${h(model.code)}">`
  return `${error}<p>${h(w.askAddress)}</p>
<form method="post" action="?lang=${lang}">${code}
<label>${h(w.address)}<input type="email" name="address" inputmode="email" autocomplete="email"
 maxlength="254" required value="${h(model.value ?? '')}"></label>
<button type="submit">${h(w.sendLink)}</button></form>
<p>${h(w.orMail(model.entry))} <a href="mailto:${h(model.entry)}">${h(model.entry)}</a></p>
${guidance(lang, model.allowDomain)}`
}

export function signupForm (lang: Language, model: FormModel): string {
  const w = words(lang)
  const { choices } = model
  const groupPath = (id: string): string =>
    model.organisations.flatMap((o) => o.groups).find((g) => g.id === id)?.path ?? id
  const items = model.problems.map((p) => `<li>${h(problemText(lang, p, groupPath))}</li>`)
  const problems = items.length === 0
    ? ''
    : `<div class="problems" role="alert"><p>${h(w.problemsHead)}</p><ul>${items.join('')}</ul></div>`
  const english = choices.language === 'en'

  return `${problems}<p>${h(w.forAddress(model.masked))}</p>
<form method="post" action="?lang=${lang}">
<fieldset><legend>${h(w.organisations)}</legend><p class="hint">${h(w.organisationsHint)}</p>
${model.organisations.map((o) => organisationBlock(lang, o, choices)).join('\n')}</fieldset>
<fieldset><legend>${h(w.topics)}</legend>${model.topics.map((t) =>
  checkbox('topic', t.id, t.name, choices.topics.includes(t.id))).join('')}</fieldset>
<fieldset><legend>${h(w.language)}</legend>
${radio('language', 'ja', '日本語', !english)}${radio('language', 'en', 'English', english)}
</fieldset>
<fieldset><legend>${h(w.children)}</legend><p class="hint">${h(w.childrenHint)}</p>
${childInputs(choices.children)}</fieldset>
<fieldset><legend>${h(w.consent)}</legend><p class="consent">${h(model.consentText)}</p>
<input type="hidden" name="consentVersion" value="${h(model.consentVersion)}"></fieldset>
<button type="submit">${h(w.confirm)}</button></form>
${guidance(lang, model.allowDomain, model.carrier)}`
}

function organisationBlock (lang: Language, org: OrganisationView, choices: SignupChoices): string {
  const w = words(lang)
  const chosen = choices.organisations.includes(org.id) ||
    org.groups.some((g) => choices.groups.includes(g.id))
  const groups = org.groups.map((g) => {
    const box = checkbox('group', g.id, g.path, choices.groups.includes(g.id))
    if (!g.protected) return box
    return `${box}<label class="hint">${h(w.groupPassword(g.path))}` +
      `<input type="password" name="pw.${h(g.id)}" maxlength="200" autocomplete="off"></label>`
  }).join('')
  const whole = checkbox('org', org.id, w.wholeOrganisation(org.name), choices.organisations.includes(org.id))
  return `<details${chosen ? ' open' : ''}><summary>${h(org.name)}</summary>${whole}${groups}</details>`
}

function checkbox (name: string, value: string, label: string, checked: boolean): string {
  return choice('checkbox', name, value, label, checked)
}

function radio (name: string, value: string, label: string, checked: boolean): string {
  return choice('radio', name, value, label, checked)
}

function choice (type: string, name: string, value: string, label: string, checked: boolean): string {
  const input = `<input type="${type}" name="${name}" value="${h(value)}"${checked ? ' checked' : ''}>`
  return `<label>${input}${h(label)}</label>`
}

// Without JavaScript no line can be added on the page: the children given so far, plus two
// empty lines, up to ten.
function childInputs (children: string[]): string {
  const values = [...children, '', ''].slice(0, Math.max(2, Math.min(10, children.length + 2)))
  const input = (v: string): string =>
    `<input type="date" name="child" value="${h(v)}" maxlength="20" placeholder="2018-04-02">`
  return values.map(input).join('<br>')
}

export function donePage (lang: Language, model: {
  entry: string, allowDomain: string, carrier: Carrier, lines: string[]
}): string {
  const w = words(lang)
  return `<p>${h(w.done)}</p><ul>${model.lines.map((l) => `<li>${h(l)}</li>`).join('')}</ul>
<p>${h(w.change(model.entry))}</p><p>${h(w.stop)}</p>
${guidance(lang, model.allowDomain, model.carrier)}`
}

export function invalidLinkPage (
  lang: Language, state: LinkState, entry: string, allowDomain: string
): string {
  const w = words(lang)
  return `<p>${h(w.linkState[state])}</p><p>${h(w.mailAgain(entry))}</p>
<p><a href="mailto:${h(entry)}">${h(entry)}</a></p>
<p><a href="/signup?lang=${lang}">${h(w.webAgain)}</a></p>
${guidance(lang, allowDomain)}`
}

export function sentPage (lang: Language, model: {
  masked: string, minutes: number, allowDomain: string, carrier: Carrier
}): string {
  const text = words(lang).sent(model.masked, model.minutes)
  return `<p>${h(text)}</p>${guidance(lang, model.allowDomain, model.carrier)}`
}
