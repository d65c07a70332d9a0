import t, { type Test } from 'tap'
import {
  parseCommand, readTarget, splitTargets, readPriority, readConfirmation, isCommand, freshText,
  readPin, PREVIEW_MARKER, type GrammarProblem, type TargetSpec
} from '../../../appliance/inbound/command-grammar.js'

const paths = (targets: TargetSpec[]): string[] =>
  targets.map((x) => x.kind === 'all' ? '*' : x.path.join('/'))

function problems (t: Test, mail: { subject: string, text: string }): GrammarProblem[] {
  try {
    parseCommand(mail)
  } catch (err) {
    t.equal((err as { code: string }).code, 'MIMAMORI_COMMAND_INVALID')
    return (err as { details: { problems: GrammarProblem[] } }).details.problems
  }
  t.fail('the command was accepted')
  return []
}

t.test('a Japanese command: targets, priority, subject from the mail, body after a blank line', async (t) => {
  const c = parseCommand({
    subject: '不審者情報',
    text: '宛先: 1年2組、PTA\n優先度: 緊急\n\n本日15時ごろ、東小学校付近で不審者が目撃されました。\n集団下校します。\n'
  })
  t.same(paths(c.targets), ['1年/2組', 'PTA'])
  t.equal(c.priority, 'emergency')
  t.equal(c.subject, '不審者情報')
  t.equal(c.body, '本日15時ごろ、東小学校付近で不審者が目撃されました。\n集団下校します。')
})

t.test('an English command with a subject line and a body: line', async (t) => {
  const c = parseCommand({
    subject: 'ignored',
    text: 'To: all\nPriority: normal\nSubject: School closed tomorrow\nBody: The school is closed.\nSee the web site.'
  })
  t.same(paths(c.targets), ['*'])
  t.equal(c.priority, 'normal')
  t.equal(c.subject, 'School closed tomorrow', 'the subject line wins over the mail subject')
  t.equal(c.body, 'The school is closed.\nSee the web site.')
})

t.test('full-width digits, colons and spaces are read as plain ones', async (t) => {
  const c = parseCommand({ subject: '連絡', text: '宛先：　１年２組　２年Ａ組\n優先度　至急\n\n本文です' })
  t.same(paths(c.targets), ['1年/2組', '2年/A組'])
  t.equal(c.priority, 'emergency')
})

t.test('the subject and body keep what NFKC would change', async (t) => {
  const c = parseCommand({ subject: '', text: '宛先: 全校\n件名: ①ｶﾀｶﾅと㈱\n\n②㍉のまま' })
  t.equal(c.subject, '①ｶﾀｶﾅと㈱')
  t.equal(c.body, '②㍉のまま')
})

t.test('target forms', async (t) => {
  const cases: Array<[string, string]> = [
    ['全校', '*'], ['全員', '*'], ['ALL', '*'], ['everyone', '*'], ['全園', '*'],
    ['1年', '1年'], ['１年生', '1年'], ['3学年', '3年'], ['一年', '1年'],
    ['1年2組', '1年/2組'], ['一年二組', '1年/2組'], ['2年A組', '2年/A組'], ['2年a組', '2年/A組'],
    ['1-2', '1年/2組'], ['3-b', '3年/B組'], ['1年/2組', '1年/2組'], ['PTA', 'PTA'],
    ['年長', '年長'], ['部活動/サッカー部', '部活動/サッカー部']
  ]
  for (const [written, expected] of cases) {
    t.same(paths([readTarget(written.normalize('NFKC'), 1)]), [expected], written)
  }
})

t.test('several targets at once, with any separator; quotes keep a name with spaces', async (t) => {
  t.same(splitTargets('1年2組, 2年3組、PTA 教職員'), ['1年2組', '2年3組', 'PTA', '教職員'])
  t.same(splitTargets('「サッカー 部」 "Brass band",1年'), ['サッカー 部', 'Brass band', '1年'])
  const c = parseCommand({ subject: 's', text: '宛先: 1年\n宛先: 2年\n\nbody' })
  t.same(paths(c.targets), ['1年', '2年'], 'two target lines add up')
})

t.test('priority words', async (t) => {
  const cases: Array<[string, string]> = [
    ['緊急', 'emergency'], ['至急', 'emergency'], ['【緊急】', 'emergency'], ['Emergency', 'emergency'],
    ['通常', 'normal'], ['normal', 'normal'], ['お知らせ', 'bulk'], ['bulk', 'bulk']
  ]
  for (const [word, priority] of cases) t.equal(readPriority(word), priority, word)
  t.equal(readPriority('たぶん'), undefined)
  t.equal(parseCommand({ subject: 's', text: '宛先: 1年\n\nbody' }).priority, 'normal', 'normal by default')
  t.equal(parseCommand({ subject: 's', text: '【緊急】\n宛先: 1年\n\nbody' }).priority, 'emergency',
    'a priority word alone on a line')
})

t.test('organisation and PIN lines', async (t) => {
  const c = parseCommand({ subject: 's', text: '組織: higashi-es\n暗証番号: ４８１５\n宛先: 1年\n\nbody' })
  t.equal(c.organisation, 'higashi-es')
  t.equal(c.pin, '4815')
  t.equal(readPin('PIN: 123456\n宛先: 1年'), '123456')
})

t.test('a signature after "-- " and trailing blank lines are not part of the body', async (t) => {
  const c = parseCommand({ subject: 's', text: '宛先: 1年\n\n\n本文\n\n-- \n山田太郎\n東小学校\n' })
  t.equal(c.body, '本文')
})

t.test('an unknown line names its line number and the words', async (t) => {
  const found = problems(t, { subject: 's', text: '宛先: 1年\nあしたは休み\n\nbody' })
  t.equal(found[0]?.line, 2)
  t.match(found[0]?.ja, /あしたは休み/)
  t.match(found[0]?.en, /not a command line/)
})

t.test('a mail without any command line says so on line 1', async (t) => {
  const found = problems(t, { subject: 's', text: 'こんにちは' })
  t.equal(found[0]?.line, 1)
  t.ok(found.some((p) => /宛先/.test(p.ja)))
})

t.test('missing pieces are each reported', async (t) => {
  t.match(problems(t, { subject: 's', text: '優先度: 緊急\n\nbody' }), [{ en: /no target line/ }])
  t.match(problems(t, { subject: '', text: '宛先: 1年\n\nbody' }), [{ line: 0, en: /no subject/ }])
  t.match(problems(t, { subject: 's', text: '宛先: 1年\n' }), [{ en: /no body/ }])
  t.match(problems(t, { subject: 's', text: '宛先:\n\nbody' }), [{ line: 1, en: /target list is empty/ }])
})

t.test('bad values on keyword lines', async (t) => {
  t.match(problems(t, { subject: 's', text: '宛先: 1年\n優先度: たぶん\n\nbody' }), [{ line: 2, en: /priority "たぶん"/ }])
  t.match(problems(t, { subject: 's', text: '宛先: 1年\n優先度: 緊急\n優先度: 通常\n\nbody' }),
    [{ line: 3, en: /differs from line 2/ }])
  t.match(problems(t, { subject: 's', text: '件名: a\n件名: b\n宛先: 1年\n\nbody' }), [{ line: 2, en: /twice/ }])
  t.match(problems(t, { subject: 's', text: '暗証番号: 12\n宛先: 1年\n\nbody' }), [{ line: 1, en: /PIN/ }])
})

t.test('an English keyword needs its colon; a Japanese one may take a space', async (t) => {
  t.match(problems(t, { subject: 's', text: 'To all parents\n\nbody' }), [{ line: 1, en: /not a command line/ }])
  t.same(paths(parseCommand({ subject: 's', text: '宛先 1年\n\nbody' }).targets), ['1年'])
})

t.test('replies: the code and a cancel are read above the quoted preview only', async (t) => {
  t.same(readConfirmation('482913'), { code: '482913', cancel: false })
  t.same(readConfirmation('４８２９１３ お願いします'), { code: '482913', cancel: false }, 'full-width digits')
  t.same(readConfirmation('中止'), { cancel: true })
  t.same(readConfirmation('Cancel please'), { cancel: true })
  t.same(readConfirmation('ｷｬﾝｾﾙ'), { cancel: true }, 'half-width katakana')
  const quoted = `482913\n\n${PREVIEW_MARKER}\nやめるときは「中止」と返信\n確認コード 111111`
  t.same(readConfirmation(quoted), { code: '482913', cancel: false }, 'the quoted 中止 and code are not read')
  t.same(readConfirmation('ok\n> 中止するには 123456'), { cancel: false }, 'quoted with >')
  t.same(readConfirmation('1234567'), { cancel: false }, 'seven digits are no code')
  t.same(readConfirmation('PIN: 123456\n654321'), { code: '654321', cancel: false }, 'a PIN line is no code')
  t.equal(freshText('a\n-----Original Message-----\nb'), 'a')
})

t.test('a new command is told from a reply by its keyword lines', async (t) => {
  t.ok(isCommand('宛先: 1年\n\nbody'))
  t.ok(isCommand('\n\n件名: x\n宛先: 1年'))
  t.notOk(isCommand('482913'))
  t.notOk(isCommand('中止'))
  t.notOk(isCommand('暗証番号: 1234\n482913'), 'a PIN line alone is no command')
  t.notOk(isCommand(`482913\n> 宛先: 1年2組`), 'quoted keyword lines do not count')
})

t.test('a line break decoded in the mail subject becomes a space, so the broadcast can still go', async (t) => {
  const c = parseCommand({ subject: '件名\r\nBcc: evil@au.com', text: '宛先: 全校\n\n本文です。' })
  t.equal(c.subject, '件名 Bcc: evil@au.com', 'one header line, as the preview shows it')
})
