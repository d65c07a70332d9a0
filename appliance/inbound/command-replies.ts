// Runs in the appliance: the mails the command address sends back to staff — the preview with its
// one-time code, the acknowledgements, the summary and every refusal. Japanese first (staff read
// them on a phone), then one or two English lines. docs/mail-in.md shows each of them.

import type { BroadcastReport } from '../appliance.js'
import { PREVIEW_MARKER, type GrammarProblem } from './command-grammar.js'
import type { MailCommand } from './mail-commands.js'

export interface ReplyText { subject: string, text: string }

const PRIORITY_JA = { emergency: '緊急', normal: '通常', bulk: 'お知らせ' } as const

function clock (iso: string, timeZone: string): string {
  return new Intl.DateTimeFormat('ja-JP', { timeZone, hour: '2-digit', minute: '2-digit' }).format(new Date(iso))
}

function oneLine (text: string, max = 60): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length > max ? `${flat.slice(0, max)}…` : flat
}

/**
 * The preview. `pinLine`: the command came to plain cmd@ with a PIN, so the reply (which goes
 * there too) needs the PIN line again: a code or a cancel is never taken on the From alone.
 */
export function previewReply (
  command: MailCommand, code: string, organisationName: string, minutes: number, timeZone: string,
  options: { pinLine?: boolean } = {}
): ReplyText {
  const pin = options.pinLine === true
  const until = clock(command.expiresAt, timeZone)
  const span = minutes >= 1 ? `${Math.round(minutes)}分` : `${Math.max(1, Math.round(minutes * 60))}秒`
  const targets = command.counts.map((c) => `  ・${c.label} — ${c.recipients}名`)
  const excluded = command.excluded > 0 ? `。配信停止・宛先不明の${command.excluded}名は除く` : ''
  const text = [
    PREVIEW_MARKER,
    '次の内容で配信します。まだ何も送っていません。',
    `配信するには、このメールに返信し、1行目に確認コード ${code} を書いてください。`,
    `期限は ${until} まで（${span}）。コードは1回だけ使えます。`,
    'やめるときは「中止」と返信してください。',
    ...(pin ? ['返信にも「暗証番号: 1234」の行（あなたの暗証番号）を書いてください。'] : []),
    '',
    `■ 組織: ${organisationName} (${command.organisationId})`,
    '■ 宛先:',
    ...targets,
    `  合計 ${command.total}名（重複を除く${excluded}）`,
    `■ 優先度: ${PRIORITY_JA[command.priority]} (${command.priority})`,
    `■ 件名: ${command.subject}`,
    '■ 本文:',
    '----',
    command.body,
    '----',
    '',
    `To send, reply with the code ${code} within ${span.replace('分', ' min').replace('秒', ' s')} ` +
      `(it works once). To cancel, reply "cancel".${pin ? ' Add your PIN line to the reply.' : ''}`,
    `Recipients: ${command.total}; priority: ${command.priority}; command #${command.id}.`
  ].join('\n')
  return { subject: `[配信確認 #${command.id}] ${oneLine(command.subject)}`, text }
}

export function acceptedReply (command: MailCommand, broadcastId: number, total: number): ReplyText {
  return {
    subject: `[配信開始 #${command.id}] ${oneLine(command.subject)}`,
    text: [
      `確認コードを受け付け、配信を始めました（配信番号 ${broadcastId}、${total}名）。`,
      '終わったら結果をこのアドレスにお知らせします。',
      '',
      `The code was accepted: broadcast ${broadcastId} to ${total} recipients has started.`,
      'A summary follows when it is done.'
    ].join('\n')
  }
}

export function cancelledReply (command: MailCommand): ReplyText {
  return {
    subject: `[配信中止 #${command.id}] ${oneLine(command.subject)}`,
    text: [
      `配信命令 #${command.id}「${oneLine(command.subject, 40)}」を中止しました。何も配信していません。`,
      '',
      `Command #${command.id} was cancelled; nothing was sent.`
    ].join('\n')
  }
}

export function summaryReply (command: MailCommand, report: BroadcastReport, timeZone: string): ReplyText {
  const c = report.counts
  const done = report.status === 'cancelled' ? '取り消されました' : '終わりました'
  const times = report.completedAt === undefined
    ? []
    : [`  受付 ${clock(report.submittedAt, timeZone)} / 終了 ${clock(report.completedAt, timeZone)}`]
  return {
    subject: `[配信結果 #${command.id}] ${oneLine(command.subject)}`,
    text: [
      `配信番号 ${report.id}「${oneLine(command.subject, 40)}」の配信が${done}。`,
      `  配信完了: ${c.accepted}名`,
      `  失敗: ${c.failed}名`,
      `  配信停止・抑止: ${c.suppressed}名`,
      `  取り消し: ${c.cancelled}名`,
      `  合計: ${report.total}名（受付時に除外 ${report.excluded}名）`,
      ...times,
      '',
      `Broadcast ${report.id} is ${report.status}: ${c.accepted} accepted, ${c.failed} failed, ` +
        `${c.suppressed} suppressed, ${c.cancelled} cancelled, of ${report.total}.`
    ].join('\n')
  }
}

/** Why a command or a code was refused: each with its plain Japanese and English text. */
export type RefusalReason =
  | 'not-accepted' | 'missing-secret' | 'rate-limited' | 'grammar' | 'unknown-organisation'
  | 'unknown-group' | 'not-allowed' | 'no-recipients' | 'no-pending' | 'no-code' | 'wrong-code'
  | 'too-many-wrong-codes' | 'expired' | 'used' | 'submit-failed'

const TITLES: Record<RefusalReason, string> = {
  'not-accepted': '受け付けできません',
  'missing-secret': '配信命令用アドレスか暗証番号が必要です',
  'rate-limited': '配信命令が多すぎます',
  grammar: '書き方に誤りがあります',
  'unknown-organisation': '組織が分かりません',
  'unknown-group': '宛先が分かりません',
  'not-allowed': 'この宛先には配信できません',
  'no-recipients': '宛先に受信者がいません',
  'no-pending': '確認待ちの配信命令がありません',
  'no-code': '確認コードがありません',
  'wrong-code': '確認コードが違います',
  'too-many-wrong-codes': '確認コードの誤りが続いたため無効にしました',
  expired: '確認コードの期限が切れました',
  used: 'この確認コードは使用済みです',
  'submit-failed': '配信を開始できませんでした'
}

export function refusalReply (
  reason: RefusalReason, detail: { ja: string, en: string }, originalSubject: string
): ReplyText {
  const text = [
    `${TITLES[reason]}。何も配信していません。`,
    detail.ja,
    '',
    `Not accepted, nothing was sent: ${detail.en}`
  ].join('\n')
  const about = originalSubject.trim() === '' ? '' : ` — ${oneLine(originalSubject, 40)}`
  return { subject: `[配信命令エラー] ${TITLES[reason]}${about}`, text }
}

/** The text of a grammar refusal: every problem with its line. */
export function grammarDetail (problems: GrammarProblem[]): { ja: string, en: string } {
  const where = (p: GrammarProblem, ja: boolean): string =>
    p.line === 0 ? (ja ? 'メールの件名' : 'mail subject') : (ja ? `${p.line}行目` : `line ${p.line}`)
  return {
    ja: problems.map((p) => `${where(p, true)}: ${p.ja}`).join('\n') +
      '\n書き方の例:\n宛先: 1年2組\n優先度: 緊急\n件名: 下校時刻の変更\n\n（ここから本文）',
    en: problems.map((p) => `${where(p, false)}: ${p.en}`).join('; ')
  }
}

/** The same words whether the address or the secret was wrong, so neither is given away. */
export const NOT_ACCEPTED = {
  ja: '登録されたアドレスから、各自の配信命令用アドレスに送ってください。' +
    'このお知らせは同じアドレスに1時間に1回までしか送りません。',
  en: 'send commands from your registered address to your personal command address. ' +
    'This notice goes to an address at most once an hour.'
}

type Detail = { ja: string, en: string }

/** The explaining lines of each refusal, Japanese and English. */
export const DETAIL = {
  rateLimited: (perHour: number): Detail => ({
    ja: `1時間に${perHour}件までです。しばらくしてから送ってください。`,
    en: `at most ${perHour} commands an hour; try again later`
  }),
  missingSecret: (hasPin: boolean): Detail => hasPin
    ? {
        ja: 'あなた専用の配信命令用アドレス（cmd+…）に送るか、本文の最初に「暗証番号: 1234」の行を書いてください。',
        en: 'write to your personal command address, or add a "PIN: …" line'
      }
    : { ja: 'あなた専用の配信命令用アドレス（cmd+…）に送ってください。', en: 'write to your personal command address' },
  noRecipients: (excluded: number): Detail => ({
    ja: `宛先に配信できる受信者がいません（除外 ${excluded}名）。`,
    en: `the targets have no recipients (${excluded} excluded)`
  }),
  noPending: (): Detail => ({
    ja: 'このアドレスからの確認待ちの配信命令はありません。配信命令を送ったアドレスから返信してください。',
    en: 'no command from this address is waiting for a code; reply from the address that sent the command'
  }),
  noCode: (): Detail => ({
    ja: '返信の1行目に、プレビューにある6桁の確認コードを書いてください。',
    en: 'write the 6-digit code of the preview in your reply'
  }),
  expired: (id: number | undefined): Detail => ({
    ja: `配信命令 #${id ?? ''} の確認コードは期限切れです。もう一度、配信命令から送ってください。`,
    en: `the code of command #${id ?? ''} has expired; send the command again`
  }),
  used: (command: MailCommand | undefined): Detail => ({
    ja: `配信命令 #${command?.id ?? ''} はすでに${STATE_JA[command?.state ?? 'expired'] ?? '終わっています'}。`,
    en: `command #${command?.id ?? ''} is already ${command?.state ?? 'closed'}`
  }),
  void: (id: number, attempts: number): Detail => ({
    ja: `配信命令 #${id} は無効になりました。もう一度、配信命令から送ってください。`,
    en: `command #${id} is void after ${attempts} wrong codes; send the command again`
  }),
  interrupted: (): Detail => ({
    ja: '確認コードの受付中にアプライアンスが止まったため、配信は始まっていません。もう一度、配信命令から送ってください。',
    en: 'the appliance stopped while taking the code and nothing was sent; send the command again'
  }),
  wrongCode: (left: number): Detail => ({
    ja: `プレビューのメールにある確認コードを書いてください（あと${left}回）。`,
    en: `that is not the code of the preview (${left} tries left)`
  })
}

const STATE_JA: Partial<Record<MailCommand['state'], string>> = {
  submitted: '配信を始めています', cancelled: '中止されています', void: '無効になっています'
}
