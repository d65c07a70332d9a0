// Runs in the appliance and the public pages: the words of sign-up — the consent text a person
// agrees to (versioned, since each consent event records the version shown) and the sign-up
// link and welcome mails.

import { carrierGuidanceText } from './carrier-guidance.js'

export type Language = 'ja' | 'en'
export const LANGUAGES: readonly Language[] = ['ja', 'en']

/**
 * Every consent text ever shown, by version. A text is never edited once released: a change
 * is a new version, and the form names the version it showed, so each recorded consent points
 * at the exact words the person saw.
 */
export const CONSENT_TEXTS: Record<string, Record<Language, string>> = {
  'signup-2025-1': {
    ja: '選んだ組織から、選んだグループと話題のお知らせ・緊急情報をこのメールアドレスに受け取ることに同意します。' +
      'メールアドレスと子どもの生年月日(出産予定日)は配信のためだけに使われ、暗号化して保存されます。' +
      '配信はいつでも止められます。',
    en: 'I agree to receive notices and emergency alerts from the organisations, groups and topics ' +
      'I chose at this mail address. The address and the children\'s dates are used only to send ' +
      'these messages and are stored encrypted. I can stop at any time.'
  }
}

export const CONSENT_VERSION = 'signup-2025-1'

export function consentText (version: string, lang: Language): string | undefined {
  return CONSENT_TEXTS[version]?.[lang]
}

export interface MailText { subject: string, text: string }

/** The reply to an empty mail or a web request: bilingual, since no language is known yet. */
export function linkMail (url: string, minutes: number, entryAddress: string): MailText {
  return {
    subject: '登録用リンク / Sign-up link',
    text: [
      '見守りメールへの登録用リンクです。下のリンクを開いて、受け取るお知らせを選んでください。',
      `このリンクは${minutes}分間、1回だけ使えます。期限が切れたら ${entryAddress} へ空メールを送ってください。`,
      '',
      url,
      '',
      'Open the link above to choose the notices you want to receive.',
      `It works once, for ${minutes} minutes. If it has expired, send an empty mail to ${entryAddress}.`,
      '',
      'お心当たりのない場合は、このメールを破棄してください。何も登録されません。',
      'If you did not ask for this, ignore this mail: nothing is registered.'
    ].join('\n')
  }
}

export interface WelcomeInput {
  lang: Language
  /** 'Organisation: group, group' lines */
  choices: string[]
  topics: string[]
  entryAddress: string
  /** the person's mail domain, for the carrier guidance */
  domain: string
  allowDomain: string
}

/** The mail after a completed sign-up: what was chosen, how to change it and how to stop. */
export function welcomeMail (input: WelcomeInput): MailText {
  const list = (items: string[], none: string): string[] =>
    items.length === 0 ? [`・${none}`] : items.map((c) => `・${c}`)
  const guidance = carrierGuidanceText(input.domain, input.allowDomain, input.lang)
  if (input.lang === 'en') {
    return {
      subject: 'Your sign-up is complete',
      text: [
        'You are now signed up for:', ...list(input.choices, '(none)'),
        'Topics:', ...list(input.topics, '(none)'), '',
        `To change these choices, send an empty mail to ${input.entryAddress} again.`,
        'To stop, reply "stop" (配信停止) to any message you receive, or open the unsubscribe ' +
        'link at the end of every message.', '', guidance
      ].join('\n')
    }
  }
  return {
    subject: '登録が完了しました',
    text: [
      '次のお知らせの登録が完了しました。', ...list(input.choices, '(なし)'),
      '話題:', ...list(input.topics, '(なし)'), '',
      `登録内容を変更するときは、もう一度 ${input.entryAddress} へ空メールを送ってください。`,
      '配信を止めるときは、届いたメールに「配信停止」と返信するか、各メールの最後にある配信停止リンクを開いてください。',
      '', guidance
    ].join('\n')
  }
}
