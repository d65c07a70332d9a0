// The public sign-up pages: one-time links refused when used or expired, the form shown again
// with the choices kept on a wrong group password, a bad date or hostile input, the web form's
// double opt-in, codes that preselect, and a change of choices by signing up again.

import t from 'tap'
import { parseAddress } from '../../appliance/address.js'
import type { SignupLink } from '../../appliance/signup.js'
import { householdOf } from '../../appliance/households.js'
import {
  consentEvents, entryMail, linkFor, linkPath, mailsTo, postForm, receive, shownVersion, startSignup,
  type Fields, type SignupHarness
} from './signup-harness.js'

function classOf (h: SignupHarness, path = '1年/2組'): string {
  return h.city.groups['higashi-es']?.[path] as string
}

async function fieldsFor (h: SignupHarness, path: string, extra: Fields): Promise<Fields> {
  const page = await h.app.inject({ method: 'GET', url: path })
  const base: Fields = [['language', 'ja'], ['consentVersion', shownVersion(page.body)]]
  return [...base.filter(([name]) => !extra.some(([given]) => given === name)), ...extra]
}

function subscriberCount (h: SignupHarness): number {
  return [...h.appliance.store.subscribers.getRange()].length
}

t.test('a used link is refused with a page that says to mail entry@ again, and changes nothing', async (t) => {
  const h = await startSignup(t)
  const path = await linkFor(h, 'hanako@docomo.ne.jp')
  const fields = await fieldsFor(h, path, [['group', classOf(h)], ['topic', 'disaster']])
  t.equal((await postForm(h.app, path, fields)).statusCode, 200)
  const before = h.appliance.directory.findSubscriber(parseAddress('hanako@docomo.ne.jp'))
  const events = consentEvents(h.appliance).length

  const again = await postForm(h.app, path, [...fields, ['group', classOf(h, '2年/1組')], ['topic', 'child-rearing']])
  t.equal(again.statusCode, 410)
  t.match(again.body, 'このリンクはすでに使われています。')
  t.match(again.body, 'entry@mimamori.example.jp')
  t.same(h.appliance.directory.findSubscriber(parseAddress('hanako@docomo.ne.jp')), before, 'the subscriber is unchanged')
  t.equal(consentEvents(h.appliance).length, events, 'no consent event was added')

  const look = await h.app.inject({ method: 'GET', url: path })
  t.equal(look.statusCode, 410)
  t.match(look.body, 'すでに使われています')
  t.match(look.body, /ドコモ/, 'the refusal page carries the carrier guidance too')
})

t.test('an expired link is refused and stores nothing; an unknown token is refused too', async (t) => {
  const h = await startSignup(t)
  const path = await linkFor(h, 'late@au.com')
  const fields = await fieldsFor(h, path, [['group', classOf(h)]])
  for (const { key, value } of h.appliance.store.signups.getRange({ start: ['link'], end: ['link', '\uffff'] })) {
    h.appliance.store.signups.putSync(key, { ...(value as SignupLink), expiresAt: new Date(Date.now() - 1000).toISOString() })
  }

  const page = await h.app.inject({ method: 'GET', url: path })
  t.equal(page.statusCode, 410)
  t.match(page.body, 'このリンクは有効期限が切れています。')
  const post = await postForm(h.app, path, fields)
  t.equal(post.statusCode, 410)
  t.equal(subscriberCount(h), 0, 'nobody was stored')

  const forged = await h.app.inject({ method: 'GET', url: `/signup/${'A'.repeat(32)}` })
  t.equal(forged.statusCode, 410)
  t.match(forged.body, 'このリンクは正しくありません。')
})

t.test('a wrong group password shows the form again with the choices kept; five close the link', async (t) => {
  const h = await startSignup(t)
  const classId = classOf(h)
  h.appliance.directory.setGroupPassword(classId, 'sakura')
  const path = await linkFor(h, 'taro@softbank.ne.jp')
  const page = await h.app.inject({ method: 'GET', url: path })
  t.match(page.body, `name="pw.${classId}"`, 'the protected group asks for its password')
  const fields = await fieldsFor(h, path, [['group', classId], ['topic', 'child-rearing'], ['child', '2016-07-01']])

  const wrong = await postForm(h.app, path, [...fields, [`pw.${classId}`, 'momiji']])
  t.equal(wrong.statusCode, 400)
  t.match(wrong.body, '「1年/2組」のパスワードが違います')
  t.match(wrong.body, `value="${classId}" checked`, 'the group stays chosen')
  t.match(wrong.body, 'value="child-rearing" checked', 'the topic stays chosen')
  t.match(wrong.body, 'value="2016-07-01"', 'the date stays')
  t.equal(subscriberCount(h), 0, 'nothing stored')

  const missing = await postForm(h.app, path, fields)
  t.equal(missing.statusCode, 400, 'no password at all is wrong too')
  const right = await postForm(h.app, path, [...fields, [`pw.${classId}`, 'ｓａｋｕｒａ']])
  t.equal(right.statusCode, 200, 'the password typed in full-width letters is the same password')

  const second = await linkFor(h, 'jiro@softbank.ne.jp')
  const more = await fieldsFor(h, second, [['group', classId], [`pw.${classId}`, 'guess']])
  for (let i = 0; i < 4; i++) t.equal((await postForm(h.app, second, more)).statusCode, 400)
  const locked = await postForm(h.app, second, more)
  t.equal(locked.statusCode, 410, 'the fifth wrong guess closes the link')
  t.match(locked.body, 'パスワードの入力を何度も間違えた')
  t.equal((await postForm(h.app, second, [...more.slice(0, 3), [`pw.${classId}`, 'sakura']])).statusCode, 410,
    'even the right password no longer opens it')
})

t.test('a bad date or an unknown group is explained and nothing is stored', async (t) => {
  const h = await startSignup(t)
  const path = await linkFor(h, 'date@docomo.ne.jp')
  const cases: Array<{ fields: Fields, message: string }> = [
    { fields: [['group', classOf(h)], ['child', '2019-02-30']], message: '「2019-02-30」は日付として読めません' },
    { fields: [['group', classOf(h)], ['child', 'きのう']], message: '「きのう」は日付として読めません' },
    { fields: [['group', classOf(h)], ['child', '1890-01-01']], message: '「1890-01-01」は生年月日または出産予定日として範囲外です' },
    { fields: [['group', 'higashi-es/999']], message: 'グループ「higashi-es/999」は見つかりません' },
    { fields: [['topic', 'disaster']], message: '組織またはグループを1つ以上選んでください' }
  ]
  for (const c of cases) {
    const res = await postForm(h.app, path, await fieldsFor(h, path, c.fields))
    t.equal(res.statusCode, 400, c.message)
    t.match(res.body, c.message)
  }
  const en = await postForm(h.app, `${path}?lang=en`, await fieldsFor(h, path, cases[0]?.fields ?? []))
  t.match(en.body, '&#34;2019-02-30&#34; is not a date', 'in English on the English page')
  t.equal(subscriberCount(h), 0)

  const ok = await postForm(h.app, path, await fieldsFor(h, path, [['group', classOf(h)], ['child', '２０１９年２月２８日']]))
  t.equal(ok.statusCode, 200, 'a date typed in full-width digits with 年月日 is read')
  const subscriber = h.appliance.directory.findSubscriber(parseAddress('date@docomo.ne.jp'))
  t.same(householdOf(h.appliance.store, subscriber?.id as number)?.children, [{ date: '2019-02-28', kind: 'birth' }])
})

t.test('hostile input: HTML in names is escaped, very long fields are refused, huge bodies too', async (t) => {
  const h = await startSignup(t)
  h.appliance.directory.createOrganisation({
    id: 'evil-kg', name: '<script>alert(1)</script>園', kind: 'kindergarten', postalAddress: '<b>x</b>'
  })
  h.appliance.directory.createGroup('evil-kg', '"><img src=x onerror=alert(1)>')
  const path = await linkFor(h, 'safe@docomo.ne.jp')
  const page = await h.app.inject({ method: 'GET', url: path })
  t.notMatch(page.body, /<script/i)
  t.notMatch(page.body, /<img/i)
  t.match(page.body, '&#60;script&#62;alert(1)&#60;/script&#62;園')

  const long = await postForm(h.app, path, await fieldsFor(h, path, [['group', classOf(h)], ['child', `<b>${'9'.repeat(5000)}`]]))
  t.equal(long.statusCode, 400)
  t.match(long.body, '入力が長すぎます')
  t.notMatch(long.body, /<b>9/, 'the value comes back escaped')

  const injected = await postForm(h.app, path, await fieldsFor(h, path, [['group', '<i>x</i>'], ['pw.__proto__', 'x']]))
  t.equal(injected.statusCode, 400)
  t.match(injected.body, 'グループ「&#60;i&#62;x&#60;/i&#62;」は見つかりません')

  const huge = await postForm(h.app, path, [['child', 'x'.repeat(100_000)]])
  t.equal(huge.statusCode, 413, 'a body far larger than a form is refused')
  t.equal(subscriberCount(h), 0)
  t.equal((await h.app.inject({ method: 'GET', url: path })).statusCode, 200, 'and the link still works')
})

t.test('web sign-up is double opt-in and reads the same whether or not the address is known', async (t) => {
  const h = await startSignup(t)
  const form = await h.app.inject({ method: 'GET', url: '/signup' })
  t.equal(form.statusCode, 200)
  t.match(form.body, 'name="address"')
  t.match(form.body, 'mailto:entry@mimamori.example.jp')
  t.match(form.body, '指定受信/拒否設定', 'every carrier\'s guidance is offered')
  t.notMatch(form.body, /<script/i)

  const known = await linkFor(h, 'ab1@docomo.ne.jp')
  await postForm(h.app, known, await fieldsFor(h, known, [['group', classOf(h)]]))

  const answers = []
  for (const address of ['ab1@docomo.ne.jp', 'ab2@docomo.ne.jp']) {
    const res = await postForm(h.app, '/signup', [['address', address]])
    t.equal(res.statusCode, 200)
    answers.push(res.body)
  }
  t.equal(answers[0], answers[1], 'the page is the same for a subscriber and a stranger')
  t.match(answers[1], 'ab***@docomo.ne.jp')
  t.equal(subscriberCount(h), 1, 'nothing is stored for the new address before its link is used')
  t.equal(h.appliance.directory.findSubscriber(parseAddress('ab2@docomo.ne.jp')), undefined)

  await h.appliance.outbox.idle()
  const mails = await mailsTo(h.simulators, 'ab2@docomo.ne.jp')
  t.equal(mails.length, 1, 'the link went to the address typed')
  const path = linkPath(mails[0] as NonNullable<(typeof mails)[0]>)
  const done = await postForm(h.app, path, await fieldsFor(h, path, [['group', classOf(h)]]))
  t.equal(done.statusCode, 200)
  t.equal(consentEvents(h.appliance).find((e) => e.subscriberId === 2)?.channel, 'web', 'the consent says web')

  const bad = await postForm(h.app, '/signup', [['address', 'not an address<b>']])
  t.equal(bad.statusCode, 400)
  t.match(bad.body, 'メールアドレスの形が正しくありません')
  t.match(bad.body, 'value="not an address&#60;b&#62;"')
})

t.test('at most three links an hour reach one address, by mail and by web alike', async (t) => {
  const h = await startSignup(t)
  const address = 'many@au.com'
  for (let i = 0; i < 3; i++) await receive(h.appliance, entryMail(address), address)
  const page = await postForm(h.app, '/signup', [['address', address]])
  t.equal(page.statusCode, 200, 'the web page reads as usual')
  await receive(h.appliance, entryMail(address), address)
  await h.appliance.outbox.idle()
  t.equal((await mailsTo(h.simulators, address)).length, 3)
})

t.test('a code in entry+<code>@ or in the subject preselects; signing up again changes the choices', async (t) => {
  const h = await startSignup(t)
  const classId = classOf(h)
  const code = classId.replace('/', '_')
  const path = await linkFor(h, 'code@docomo.ne.jp', `entry+${code}@mimamori.example.jp`)
  const page = await h.app.inject({ method: 'GET', url: path })
  t.match(page.body, `value="${classId}" checked`, 'the group of the code is chosen')

  await receive(h.appliance, entryMail('subj@docomo.ne.jp', { subject: 'ｎｉｓｈｉ－ｅｓ' }), 'subj@docomo.ne.jp')
  const subjectPath = linkPath((await mailsTo(h.simulators, 'subj@docomo.ne.jp'))[0] as never)
  const subjectPage = await h.app.inject({ method: 'GET', url: subjectPath })
  t.match(subjectPage.body, 'value="nishi-es" checked', 'a full-width code in the subject is read')

  t.equal((await postForm(h.app, path, await fieldsFor(h, path, [['group', classId], ['topic', 'disaster']]))).statusCode, 200)
  const again = await linkFor(h, 'code@docomo.ne.jp')
  const current = await h.app.inject({ method: 'GET', url: again })
  t.match(current.body, `value="${classId}" checked`, 'the form shows the current choices')
  const other = classOf(h, '3年/1組')
  const changed = await postForm(h.app, again, await fieldsFor(h, again, [['group', other], ['language', 'en']]))
  t.equal(changed.statusCode, 200)
  t.match(changed.body, '<html lang="en">', 'the answer is in the language chosen')

  const subscriber = h.appliance.directory.findSubscriber(parseAddress('code@docomo.ne.jp'))
  const id = subscriber?.id as number
  t.notOk(h.appliance.directory.membersOfGroups([classId]).has(id), 'the old class is left')
  t.ok(h.appliance.directory.membersOfGroups([other]).has(id), 'the new class is joined')
  t.same(subscriber?.topics, [], 'no topic chosen this time')
  const kinds = consentEvents(h.appliance).filter((e) => e.subscriberId === id).map((e) => e.kind)
  t.same(kinds, ['sign-up', 'change'])
  t.equal(subscriberCount(h), 1, 'asking for a link by subject stored nobody')
})

t.test('the English page and an unsubscribed person signing up again', async (t) => {
  const h = await startSignup(t)
  const path = await linkFor(h, 'en@i.softbank.jp')
  const page = await h.app.inject({ method: 'GET', url: `${path}?lang=en` })
  t.match(page.body, '<html lang="en">')
  t.match(page.body, 'Choose what you receive')
  t.match(page.body, 'Ends with')
  t.match(page.body, `href="?lang=ja"`, 'a switch back to Japanese')

  const { subscriber } = h.appliance.directory.upsertSubscriber({ address: parseAddress('back@docomo.ne.jp') })
  h.appliance.directory.addMembership(subscriber.id, 'higashi-es', classOf(h))
  h.appliance.directory.unsubscribeAll(subscriber.id)
  h.appliance.directory.markLeft(subscriber.id, 'higashi-es')
  const back = await linkFor(h, 'back@docomo.ne.jp')
  t.equal((await postForm(h.app, back, await fieldsFor(h, back, [['group', classOf(h)]]))).statusCode, 200)
  const after = h.appliance.directory.subscriber(subscriber.id)
  t.equal(after?.status, 'active', 'a new sign-up is a new consent')
  t.equal(after?.left, undefined, 'and undoes the stop for the organisation chosen')
  t.equal(consentEvents(h.appliance).at(-1)?.kind, 'sign-up')
})
