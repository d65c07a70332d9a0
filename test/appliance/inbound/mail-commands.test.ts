// The stored state of mail-in commands, with an injected clock: codes used once, wrong codes
// counted, expiry, and the hourly counters of the command address (the allowance, refusals, PINs).

import t, { type Test } from 'tap'
import { openStore } from '../../../appliance/store/store.js'
import { MailCommandBook, type NewMailCommand } from '../../../appliance/inbound/mail-commands.js'
import { CommandLimits } from '../../../appliance/inbound/command-limits.js'

const HOUR = 3_600_000

function setup (t: Test): { book: MailCommandBook, limits: CommandLimits, clock: { now: number } } {
  const { store, vault } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const clock = { now: Date.parse('2025-06-01T06:00:00Z') }
  const now = (): number => clock.now
  return { book: new MailCommandBook(store, vault, now), limits: new CommandLimits(store, now), clock }
}

const input = (fromIndex = 'addr-a'): NewMailCommand => ({
  staffId: 1, login: 'yamada', fromIndex, sealedFrom: new Uint8Array(1), commandAddress: 'cmd@x.jp',
  organisationId: 'higashi-es', targets: {}, counts: [], total: 3, excluded: 0,
  subject: '件名', body: '本文', priority: 'normal'
})

t.test('a code is used once, only from the address that sent the command', async (t) => {
  const { book } = setup(t)
  const { command, code } = book.create(input(), 15)
  t.match(code, /^\d{6}$/)
  t.equal(book.useCode('addr-b', code, 5).ok, false, 'another address finds nothing')
  t.match(book.useCode('addr-b', code, 5), { reason: 'no-pending' })
  const first = book.useCode('addr-a', code, 5)
  t.match(first, { ok: true, command: { id: command.id, state: 'submitted' } })
  t.match(book.useCode('addr-a', code, 5), { ok: false, reason: 'used' }, 'the second use is refused')
})

t.test('wrong codes count, and the last allowed one voids the command', async (t) => {
  const { book } = setup(t)
  const { code } = book.create(input(), 15)
  const wrong = code === '000000' ? '111111' : '000000'
  t.match(book.useCode('addr-a', wrong, 3), { reason: 'wrong-code', command: { wrongCodes: 1, state: 'pending' } })
  t.match(book.useCode('addr-a', wrong, 3), { reason: 'wrong-code', command: { wrongCodes: 2 } })
  t.match(book.useCode('addr-a', wrong, 3), { reason: 'wrong-code', command: { wrongCodes: 3, state: 'void' } })
  t.match(book.useCode('addr-a', code, 3), { ok: false, reason: 'used' }, 'the right code no longer works')
})

t.test('a code after the limit is expired, also for a second try', async (t) => {
  const { book, clock } = setup(t)
  const { code } = book.create(input(), 15)
  clock.now += 15 * 60_000 + 1
  t.match(book.useCode('addr-a', code, 5), { reason: 'expired', command: { state: 'expired' } })
  t.match(book.useCode('addr-a', code, 5), { reason: 'expired' })
})

t.test('a cancel takes the named command, else the newest pending one', async (t) => {
  const { book } = setup(t)
  const a = book.create(input(), 15).command
  const b = book.create(input(), 15).command
  t.equal(book.cancel('addr-a', a.id)?.id, a.id)
  t.equal(book.cancel('addr-a')?.id, b.id)
  t.equal(book.cancel('addr-a'), undefined, 'nothing left to cancel')
})

t.test('the hourly allowance and the once-an-hour notice', async (t) => {
  const { limits, clock } = setup(t)
  for (let i = 0; i < 3; i++) limits.hit('k')
  t.ok(limits.exhausted('k', 3))
  t.notOk(limits.exhausted('other', 3), 'counted per key')
  clock.now += HOUR
  t.notOk(limits.exhausted('k', 3), 'a new hour starts afresh')

  t.ok(limits.mayReply('k', 'notice'))
  t.notOk(limits.mayReply('k', 'notice'))
  clock.now += HOUR - 1
  t.notOk(limits.mayReply('k', 'notice'), 'still within the hour')
  clock.now += 1
  t.ok(limits.mayReply('k', 'notice'))
})

t.test('refused mail is counted apart from the allowance, per sender and for everyone', async (t) => {
  const { limits, clock } = setup(t)
  const caps = { perSender: 2, overall: 3, pinTries: 2 }
  t.equal(limits.refusal('forged', caps), undefined)
  t.equal(limits.refusal('forged', caps), undefined)
  t.equal(limits.refusal('forged', caps), 'sender', 'past its own cap')
  t.equal(limits.used('forged'), 0, 'the allowance of the real sender is untouched')
  t.equal(limits.refusal('b', caps), undefined, 'a mail over its sender cap did not count for everyone')
  t.equal(limits.refusal('c', caps), 'overall', 'past the cap of all senders together')
  clock.now += HOUR
  t.equal(limits.refusal('c', caps), undefined, 'a new hour starts afresh')

  t.notOk(limits.pinLocked('k', caps))
  limits.wrongPin('k')
  limits.wrongPin('k')
  t.ok(limits.pinLocked('k', caps), 'wrong PINs lock the PIN of that address for the hour')
  t.notOk(limits.pinLocked('other', caps))
})
