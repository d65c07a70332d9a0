// Runs in the appliance and the public pages: how a person allows our mail on their carrier
// (ドメイン指定受信). A carrier filter that refuses our domain is the most common reason a parent
// never receives anything, so every sign-up page and the welcome mail carry these steps.

export type Carrier = 'docomo' | 'au' | 'softbank' | 'other'

export interface CarrierGuidance {
  carrier: Carrier
  name: { ja: string, en: string }
  /** the steps, in order; `{domain}` stands for the domain to allow */
  steps: { ja: string[], en: string[] }
}

const DOMAINS: Record<string, Carrier> = {
  'docomo.ne.jp': 'docomo',
  'ezweb.ne.jp': 'au',
  'au.com': 'au',
  'softbank.ne.jp': 'softbank',
  'i.softbank.jp': 'softbank'
}

// Step names as the carriers' own setting screens call them. The carriers move menu items now
// and then; the words to look for (指定受信/拒否設定, 受信リスト, 受信許可リスト) have stayed.
const GUIDANCE: Record<Carrier, CarrierGuidance> = {
  docomo: {
    carrier: 'docomo',
    name: { ja: 'ドコモ (docomo.ne.jp)', en: 'docomo (docomo.ne.jp)' },
    steps: {
      ja: [
        '「My docomo」(ドコモお客様サポート) の「メール設定」から「迷惑メール対策」を開きます。',
        '「指定受信/拒否設定」で「設定を利用する」を選び「次へ」を押します。',
        '受信するメールに「{domain}」を入力し、「確認する」→「設定を確定する」を押します。'
      ],
      en: [
        'In "My docomo" (docomo customer support), open Mail settings, then Spam protection (迷惑メール対策).',
        'In "Specified receive/reject" (指定受信/拒否設定), choose "Use this setting" and tap Next.',
        'Add "{domain}" to the mail to receive, then tap Confirm and Save (設定を確定する).'
      ]
    }
  },
  au: {
    carrier: 'au',
    name: { ja: 'au (au.com / ezweb.ne.jp)', en: 'au (au.com / ezweb.ne.jp)' },
    steps: {
      ja: [
        'auメールの「アドレス変更/迷惑メール設定」から「迷惑メールフィルターの設定/確認へ」を開き、暗証番号を入力します。',
        '「受信リストに登録/アドレス帳受信設定をする」を選びます。',
        '「{domain}」を入力して「ドメイン一致」を選び、「有効」にして「変更する」を押します。'
      ],
      en: [
        'In au Mail, open "Address change / spam settings", then "Spam filter settings" and enter your PIN.',
        'Choose "Register in the receive list" (受信リストに登録).',
        'Enter "{domain}", choose "Domain match" (ドメイン一致), set it Active and tap Change.'
      ]
    }
  },
  softbank: {
    carrier: 'softbank',
    name: { ja: 'ソフトバンク (softbank.ne.jp / i.softbank.jp)', en: 'SoftBank (softbank.ne.jp / i.softbank.jp)' },
    steps: {
      ja: [
        '「My SoftBank」の「メール設定」→「迷惑メール対策」を開きます。',
        '@softbank.ne.jp なら「S!メール(MMS)」、@i.softbank.jp なら「Eメール(i)」を選び、「受信許可リスト設定」を開きます。',
        '「{domain}」を入力して「後方一致」を選び、「次へ」→「設定する」を押します。'
      ],
      en: [
        'In "My SoftBank", open Mail settings, then Spam protection (迷惑メール対策).',
        'Choose "S!Mail (MMS)" for @softbank.ne.jp or "E-mail (i)" for @i.softbank.jp, then open the "Allow list" (受信許可リスト設定).',
        'Enter "{domain}", choose "Ends with" (後方一致), then tap Next and Set.'
      ]
    }
  },
  other: {
    carrier: 'other',
    name: { ja: 'その他のメール (Gmail、Yahoo!メールなど)', en: 'Other mail (Gmail, Yahoo! Mail…)' },
    steps: {
      ja: [
        '迷惑メールフォルダを確認し、届いていたら「迷惑メールではない」にします。',
        '差出人のアドレス (@{domain}) を連絡先に登録します。'
      ],
      en: [
        'Look in the spam folder; if our mail is there, mark it "Not spam".',
        'Add the sender address (@{domain}) to your contacts.'
      ]
    }
  }
}

export const CARRIERS: readonly Carrier[] = ['docomo', 'au', 'softbank', 'other']

/** The carrier of a mail domain; any domain not issued by the three carriers is 'other'. */
export function carrierOf (domain: string): Carrier {
  return DOMAINS[domain.toLowerCase()] ?? 'other'
}

/** The guidance for a carrier with the domain to allow filled in. */
export function carrierGuidance (carrier: Carrier, allowDomain: string): CarrierGuidance {
  const g = GUIDANCE[carrier]
  const fill = (steps: string[]): string[] => steps.map((s) => s.replaceAll('{domain}', allowDomain))
  return { ...g, steps: { ja: fill(g.steps.ja), en: fill(g.steps.en) } }
}

/** The short text for a mail: the person's carrier's steps, in one language. */
export function carrierGuidanceText (domain: string, allowDomain: string, lang: 'ja' | 'en'): string {
  const g = carrierGuidance(carrierOf(domain), allowDomain)
  const head = lang === 'ja'
    ? `■ メールが届かなくなったら (${g.name.ja}: ドメイン指定受信)`
    : `■ If our mail stops arriving (${g.name.en}: allow our domain)`
  return [head, ...g.steps[lang].map((s, i) => `${i + 1}. ${s}`)].join('\n')
}
