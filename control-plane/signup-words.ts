// Runs in the appliance's main thread: the words of the sign-up pages, in Japanese and English.
// Plain text only; the views escape every piece when they place it.

import type { Language } from '../appliance/signup-texts.js'
import type { SignupProblem } from '../appliance/signup-completion.js'
import type { LinkState } from '../appliance/signup.js'

const JA = {
  switchTo: 'English',
  signupTitle: '見守りメール 登録',
  askAddress: '登録するメールアドレスを入力してください。登録用のリンクをお送りします。',
  orMail: (entry: string) => `空メールを ${entry} へ送っても登録できます。`,
  address: 'メールアドレス',
  sendLink: '登録用リンクを送る',
  badAddress: 'メールアドレスの形が正しくありません。確認してもう一度入力してください。',
  sentTitle: 'リンクを送りました',
  sent: (masked: string, minutes: number) =>
    `${masked} がメールを受け取れるアドレスなら、登録用リンクを送りました。リンクは${minutes}分間有効です。` +
    'メールが届かないときは、下の「ドメイン指定受信」の設定を確認してから、もう一度お試しください。',
  formTitle: '受け取るお知らせを選ぶ',
  forAddress: (masked: string) => `${masked} の登録`,
  organisations: '組織とグループ',
  organisationsHint: '学校・園・クラスなどを選んでください (複数選べます)。',
  wholeOrganisation: (name: string) => `${name} 全体`,
  groupPassword: (path: string) => `「${path}」のパスワード (配布された用紙に書かれています)`,
  topics: '話題',
  language: 'メールの言語',
  children: 'お子さんの生年月日または出産予定日',
  childrenHint: '例: 2018-04-02。お子さんが複数いるときは、それぞれ入力してください。',
  consent: '同意事項',
  confirm: '同意して登録する',
  problemsHead: '入力を確認してください:',
  doneTitle: '登録が完了しました',
  done: '確認のメールをお送りしました。',
  change: (entry: string) => `登録内容を変えるときは、もう一度 ${entry} へ空メールを送ってください。`,
  stop: '配信を止めるときは、届いたメールに「配信停止」と返信するか、メールの最後にある配信停止リンクを開いてください。',
  invalidTitle: 'このリンクは使えません',
  linkState: {
    used: 'このリンクはすでに使われています。',
    expired: 'このリンクは有効期限が切れています。',
    locked: 'パスワードの入力を何度も間違えたため、このリンクは使えなくなりました。',
    unknown: 'このリンクは正しくありません。'
  } satisfies Record<LinkState, string>,
  mailAgain: (entry: string) => `もう一度 ${entry} へ空メールを送ると、新しいリンクが届きます。`,
  webAgain: 'メールアドレスを入力して登録する',
  guidanceTitle: 'メールが届かないとき (ドメイン指定受信)',
  guidanceIntro: (domain: string) =>
    `携帯電話会社の迷惑メール設定で、@${domain} からのメールが届かないことがあります。次の手順で受信を許可してください。`,
  guidanceUrl: 'URL付きのメールを拒否する設定にしている場合は、その設定も解除してください。',
  otherCarriers: 'ほかの携帯電話会社の場合'
}

type Words = typeof JA

const EN: Words = {
  switchTo: '日本語',
  signupTitle: 'Mimamori mail sign-up',
  askAddress: 'Enter the mail address to sign up. We will send you a sign-up link.',
  orMail: (entry) => `You can also send an empty mail to ${entry}.`,
  address: 'Mail address',
  sendLink: 'Send me the sign-up link',
  badAddress: 'This does not look like a mail address. Please check it and enter it again.',
  sentTitle: 'Link sent',
  sent: (masked, minutes) =>
    `If ${masked} can receive mail, a sign-up link is on its way. It works for ${minutes} minutes. ` +
    'If nothing arrives, check the "allow our domain" settings below and try again.',
  formTitle: 'Choose what you receive',
  forAddress: (masked) => `Sign-up for ${masked}`,
  organisations: 'Organisations and groups',
  organisationsHint: 'Choose schools, kindergartens, classes… (as many as you like).',
  wholeOrganisation: (name) => `${name} (whole organisation)`,
  groupPassword: (path) => `Password for "${path}" (printed on the paper you were given)`,
  topics: 'Topics',
  language: 'Language of the mail',
  children: 'Children\'s birth dates or due dates',
  childrenHint: 'For example 2018-04-02. One line per child.',
  consent: 'Consent',
  confirm: 'Agree and sign up',
  problemsHead: 'Please check:',
  doneTitle: 'Sign-up complete',
  done: 'We have sent you a confirmation mail.',
  change: (entry) => `To change your choices, send an empty mail to ${entry} again.`,
  stop: 'To stop, reply "配信停止" (stop) to any message, or open the unsubscribe link at the end of every message.',
  invalidTitle: 'This link cannot be used',
  linkState: {
    used: 'This link has been used already.',
    expired: 'This link has expired.',
    locked: 'This link was closed after too many wrong passwords.',
    unknown: 'This link is not valid.'
  },
  mailAgain: (entry) => `Send an empty mail to ${entry} again to get a new link.`,
  webAgain: 'Sign up with your mail address',
  guidanceTitle: 'If our mail does not arrive (allow our domain)',
  guidanceIntro: (domain) =>
    `Carrier spam settings may refuse mail from @${domain}. Allow it with these steps.`,
  guidanceUrl: 'If your phone refuses mail containing links (URL付きメール拒否), turn that off too.',
  otherCarriers: 'Other carriers'
}

export function words (lang: Language): Words {
  return lang === 'en' ? EN : JA
}

/** One sentence per problem, naming the value the person gave (escaped by the caller). */
export function problemText (lang: Language, p: SignupProblem, groupName: (id: string) => string): string {
  const v = p.value ?? ''
  const ja: Record<SignupProblem['problem'], string> = {
    'nothing-chosen': '組織またはグループを1つ以上選んでください。',
    'unknown-organisation': `組織「${v}」は見つかりません。一覧から選び直してください。`,
    'unknown-group': `グループ「${v}」は見つかりません。一覧から選び直してください。`,
    'unknown-topic': `話題「${v}」は見つかりません。`,
    'bad-language': '言語を選んでください。',
    'wrong-password': `「${groupName(v)}」のパスワードが違います。配布された用紙を確認してください。`,
    'bad-date': `「${v}」は日付として読めません。2018-04-02 のように入力してください。`,
    'date-range': `「${v}」は生年月日または出産予定日として範囲外です。`,
    'too-long': '入力が長すぎます。',
    'too-many': '選んだ項目が多すぎます。',
    consent: 'ページが古くなっていました。同意事項を確認して、もう一度登録してください。'
  }
  const en: typeof ja = {
    'nothing-chosen': 'Choose at least one organisation or group.',
    'unknown-organisation': `There is no organisation "${v}". Please choose from the list.`,
    'unknown-group': `There is no group "${v}". Please choose from the list.`,
    'unknown-topic': `There is no topic "${v}".`,
    'bad-language': 'Choose a language.',
    'wrong-password': `The password for "${groupName(v)}" is wrong. Please check the paper you were given.`,
    'bad-date': `"${v}" is not a date. Enter it like 2018-04-02.`,
    'date-range': `"${v}" is not a plausible birth or due date.`,
    'too-long': 'An entry is too long.',
    'too-many': 'Too many items were chosen.',
    consent: 'The page was out of date. Please read the consent text and confirm again.'
  }
  return (lang === 'en' ? en : ja)[p.problem]
}
