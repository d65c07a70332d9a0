// Runs in the appliance's main thread: what a recipient's reply asks for, read from its first
// meaningful line — quoted lines, signatures and the client's "wrote:" header are skipped —
// after folding full-width letters and case (ＳＴＯＰ, Stop → stop).

export type ReplyIntent =
  | { kind: 'stop' }
  | { kind: 'read' }
  // The two-way issue adds `{ kind: 'answer', choice: number }` here: a numbered answer to the
  // broadcast's question, read from the same first line (１, 2番, ②…) before the keywords.
  | { kind: 'text' }

const STOP = new Set(['退会', '配信停止', '停止', '解除', '配信解除', '登録解除', 'stop', 'unsubscribe'])
const READ = new Set([
  '確認', '確認しました', '了解', '了解しました', '承知しました', 'はい', 'ok', 'okay', 'read'
])

// Where the person's own words end: a signature, or the client's header above the quoted mail.
const END_OF_WORDS = [
  /^--\s*$/,
  /^-{3,}\s*(original message|元のメッセージ|転送|forwarded message)/i,
  /^on .{1,200} wrote:$/i,
  /(wrote|書きました|のメッセージ|のメール)\s*[:：]$/
]
const QUOTED = /^[>＞|]/
// Invisible characters phones put around text: zero-width spaces, joiners, BOM.
const INVISIBLE = /[\u200b-\u200d\u2060\ufeff]/g
// Punctuation and brackets that may surround a keyword: 「停止」、stop. ＯＫ！
const EDGES = /^[\s\p{P}\p{S}]+|[\s\p{P}\p{S}]+$/gu
const SUBJECT_PREFIX = /^\s*((re|fw|fwd|aw|返信|転送)\s*(\[\d+\])?\s*[:：]\s*)+/i

/** A line folded for comparison: NFKC (full-width to ASCII), lower case, edges trimmed. */
export function foldLine (line: string): string {
  return line.normalize('NFKC').replace(INVISIBLE, '').toLowerCase().replace(EDGES, '')
}

/** The first line that is the person's own words, folded; undefined when there is none. */
export function firstMeaningfulLine (text: string): string | undefined {
  for (const raw of text.split(/\r\n|\r|\n/)) {
    const line = raw.replace(INVISIBLE, '').trim()
    if (line === '' || QUOTED.test(line)) continue
    if (END_OF_WORDS.some((re) => re.test(line))) return undefined
    const folded = foldLine(line)
    if (folded !== '') return folded
  }
  return undefined
}

function intentOf (words: string): ReplyIntent {
  if (STOP.has(words)) return { kind: 'stop' }
  if (READ.has(words)) return { kind: 'read' }
  return { kind: 'text' }
}

/**
 * The intent of a reply. A subject that is a stop word and no reply ("unsubscribe", as a mail
 * client's List-Unsubscribe mailto sends it) stops whatever the body says; an empty body lets
 * the subject speak.
 */
export function replyIntent (text: string, subject: string): ReplyIntent {
  const isReply = SUBJECT_PREFIX.test(subject)
  const bareSubject = foldLine(subject.replace(SUBJECT_PREFIX, ''))
  if (!isReply && STOP.has(bareSubject)) return { kind: 'stop' }

  const first = firstMeaningfulLine(text)
  if (first !== undefined) return intentOf(first)
  return intentOf(bareSubject)
}
