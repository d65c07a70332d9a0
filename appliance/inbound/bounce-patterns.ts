// Runs in the appliance, under the bounce classifier: turns what a bounce says about one
// recipient (the receiving server's reply, the status code, the bounce's own explanation) into
// one reason. The words are those real MTAs and the Japanese carriers use; the order of the
// lists decides when a text holds several (a full mailbox named in a reply that also gave up).

export type BounceReason =
  | 'user-unknown' | 'host-unknown' | 'mailbox-full' | 'filtered' | 'blocked' | 'rejected'
  | 'expired' | 'suspended' | 'message-too-big' | 'policy' | 'spam' | 'network' | 'system'
  | 'other' | 'delivered' | 'vacation' | 'feedback'

/** What a bounce says about one recipient, before it is judged. */
export interface BounceFinding {
  address?: string
  /** the DSN Action, lower-cased: failed, delayed, delivered, relayed, expanded */
  action?: string
  status?: string
  replyCode?: number
  /** the receiving server's own words about this recipient */
  diagnostic?: string
  /** the bounce's explanation around this recipient (or the whole of it) */
  context: string
  /** a reason the report states in its own terms (Amazon SES bounce sub-types) */
  statedReason?: BounceReason
}

type Rule = [BounceReason, RegExp]

// Checked in this order; the first match decides.
const RULES: Rule[] = [
  // Japanese carriers: au answers "550 : User unknown" (no address) and docomo "Unknown user"
  // when the person's domain filter (ドメイン指定受信) refuses us; au's own notice for it says
  // only that a remote server rejected the recipient. None of these means the address is dead.
  ['filtered', /\b550[ -]?:\s*user unknown|\bunknown user\b|recipients was rejected by a remote mail server/i],
  ['filtered', /domain[- ]?filter|受信拒否|ドメイン指定|指定受信|迷惑メール(?:フィルタ|設定|防止)|\bfiltered\b|rejected by (?:the )?recipient'?s? (?:filter|rules?)/i],
  ['suspended', /account (?:is |has been )?(?:disabled|suspended|deactivated|inactive|locked|closed)|mailbox (?:is )?(?:disabled|inactive|suspended|closed|not active)|(?:user|recipient)(?:'s)? (?:account )?(?:is )?(?:suspended|disabled|inactive|deactivated)|(?:利用|使用)(?:停止|中止)|休止中/i],
  ['mailbox-full', /mailbox (?:is )?full|mailbox (?:has )?exceeded|over ?quota|quota (?:exceeded|full)|exceeded (?:storage|(?:the )?quota|(?:the )?mailbox size)|storage (?:quota|allocation|limit)|(?:insufficient|not enough) (?:disk |storage )?space|disk (?:is )?full|exceeded the local limit|mailbox size limit|their mailbox is full|メールボックスが(?:一杯|いっぱい|満杯)|容量(?:が)?(?:オーバー|超過|不足)/i],
  ['message-too-big', /message (?:is )?too (?:big|large)|(?:message|mail) size (?:exceeds|too)|exceeds (?:the )?(?:fixed )?(?:maximum|max|allowed) (?:message )?size|size limit|too large|line (?:length )?limit exceeded|line too long|サイズ(?:が|を)?(?:超|制限|大き)/i],
  ['host-unknown', /host or domain name not found|(?:host|domain) (?:name )?not found|no such domain|unrouteable (?:mail )?domain|unrouteable address|name service error|domain (?:does not|doesn't) exist|\bno mx\b|mx (?:record )?not found|nxdomain|unknown host|host unknown|unknown domain|domain (?:is )?unknown|null mx|does not accept mail/i],
  ['user-unknown', /user unknown|unknown (?:recipient|mailbox|local[- ]?part|address)|no such (?:user|mailbox|recipient|address|account)|(?:user|mailbox|recipient|address|account) (?:does not|doesn't|did not) exist|(?:mailbox|recipient|user|address) not found|invalid (?:recipient|mailbox)|not a valid (?:recipient|mailbox|user)|unknown or illegal alias|no longer (?:on server|available|valid|active)|recipient no longer|doesn'?t have an? [\w.-]+ account|wasn'?t found at the destination|宛先(?:の)?(?:メール)?アドレスが(?:見つかりません|存在しません)|存在しない(?:メール)?アドレス/i],
  ['expired', /retry timeout exceeded|expired|(?:in|has been in) the queue too long|not (?:been )?delivered within|could not be delivered within|still undelivered|timed? ?out|giving up|gave up|no answer from host|(?:配送|送信)期限/i],
  ['blocked', /reputation|block ?list|black ?list|dnsbl|\brbl\b|spamhaus|spamcop|sorbs|barracuda|listed (?:at|on|in|by)|blocked using|client host (?:\[[^\]]*\] )?(?:rejected|blocked)|\bptr (?:record|resource)|reverse dns|\brdns\b|invalid ip|(?:dynamic|residential|dial-?up) ip|smtp server of your isp|temporarily (?:deferred|rate limited)|rate limit|too many (?:connections|messages|mails|recipients)|messages from \S+ weren'?t sent|\b(?:sc|bl|dy|rp)-00\d\b|deferred due to/i],
  ['spam', /spam|junk mail|virus|malware|phish|content (?:rejected|refused)|unsolicited|bulk mail/i],
  ['blocked', /\bblocked\b/i],
  ['policy', /dmarc|\bspf\b|dkim|unauthenticated|authentication (?:failed|required)|not authenticated|\b(?:start)?tls\b|encryption required|multiple addresses in from|not (?:rfc|rfc ?\d+)[- ]?compliant|rfc ?(?:5322|2822)|header (?:is |was )?(?:invalid|malformed|missing)|policy/i],
  ['system', /improper sequence|bad sequence|command (?:parameter )?not implemented|syntax error|command unrecognized|system error|internal (?:server )?error|local error|mail system problem|system (?:is )?(?:busy|full|not available)|insufficient system|server (?:is )?busy|try again later|service (?:is )?(?:not |un)available/i],
  ['network', /connection (?:refused|reset|lost|closed|dropped)|refused to accept a connection|network|no route to host|unreachable|(?:could not|failed to) connect|lost connection|not responding/i],
  ['rejected', /rejected|refused|not accepted|not allowed|access denied|denied|not permitted/i]
]

// Enhanced status codes (RFC 3463) that name the problem exactly, by subject.detail.
const EXACT_STATUS: Record<string, BounceReason> = {
  '1.1': 'user-unknown', '1.2': 'host-unknown', '1.3': 'user-unknown', '1.6': 'user-unknown',
  '1.10': 'host-unknown', '1.7': 'rejected', '1.8': 'rejected',
  '2.1': 'suspended', '2.2': 'mailbox-full', '2.3': 'message-too-big',
  '3.1': 'mailbox-full', '3.4': 'message-too-big',
  '4.1': 'network', '4.2': 'network', '4.4': 'host-unknown', '4.6': 'network', '4.7': 'expired',
  '7.23': 'policy', '7.24': 'policy', '7.25': 'blocked', '7.26': 'policy', '7.27': 'host-unknown'
}

// The status subject alone, for when nothing else says more. 5.2.0 is what docomo and au
// answered for filtered mail.
const STATUS_SUBJECT: Record<string, BounceReason> = {
  2: 'filtered', 3: 'system', 4: 'network', 5: 'system', 6: 'policy', 7: 'policy'
}

/** The reason for one recipient: the server's words, an exact status, the bounce's words, the rest. */
export function reasonFor (finding: BounceFinding): BounceReason {
  const detail = finding.status?.split('.').slice(1).join('.')
  const subject = finding.status?.split('.')[1]
  return textReason(finding.diagnostic) ??
    finding.statedReason ??
    (detail === undefined ? undefined : EXACT_STATUS[detail]) ??
    textReason(finding.context) ??
    (finding.action === 'delayed' ? 'expired' : undefined) ??
    (subject === undefined ? undefined : STATUS_SUBJECT[subject]) ??
    replyCodeReason(finding.replyCode)
}

/** The first reason whose words the text holds. */
export function textReason (text: string | undefined): BounceReason | undefined {
  if (text === undefined || text.trim() === '') return undefined
  const flat = flatten(text)
  return RULES.find(([, pattern]) => pattern.test(flat))?.[0]
}

// Multi-line SMTP replies repeat their code inside the text ("is 550-5.7.1 likely"), and
// wrapped lines split phrases: both are undone before matching.
// Addresses are masked first: a mailbox named "filtered@" or "blocked@" says nothing. au's
// "550 : User unknown" keeps its code, which is what tells it apart.
function flatten (text: string): string {
  return text.replace(ADDRESS, 'address').replace(/\s+/g, ' ')
    .replace(/(\S )[245]\d\d[ -](?! ?:)(?:[245]\.\d{1,3}\.\d{1,3} )?/g, '$1')
}

const ADDRESS = /[^\s<>()"',;:]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+/g

function replyCodeReason (code: number | undefined): BounceReason {
  switch (code) {
    case 551: return 'user-unknown'
    case 552: return 'mailbox-full'
    case 421: return 'network'
    default: return code !== undefined && code >= 500 ? 'rejected' : 'other'
  }
}

/** An enhanced status code (x.y.z) in a text, not part of an IP address or version number. */
export function statusIn (text: string | undefined): string | undefined {
  const codes = [...(text ?? '').matchAll(/(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d]|\.\d)/g)].map((m) => m[1] ?? '')
  // a reply that quotes another server's reply ("5.1.0 ... 550-'5.2.2 Mailbox Full'") holds a
  // vague code and an exact one: the first with a detail other than 0 is the exact one
  return codes.find((code) => !code.endsWith('.0.0') && !/^\d\.\d\.0$/.test(code)) ?? codes[0]
}

/** The SMTP reply code that starts a reply in a text. */
export function replyCodeIn (text: string | undefined): number | undefined {
  const match = /(?:^|[\s:;'"(<>\]])([245][0-5]\d)(?=[ -]|$)/m.exec(text ?? '')
  return match?.[1] === undefined ? undefined : Number(match[1])
}
