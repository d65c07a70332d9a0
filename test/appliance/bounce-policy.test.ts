import t, { type Test } from 'tap'
import { openStore } from '../../appliance/store/store.js'
import { Directory, type Subscriber } from '../../appliance/directory.js'
import { parseAddress } from '../../appliance/address.js'
import {
  applyBouncePolicy, refusalFacts, SOFT_BOUNCE_WINDOW_MS, type BounceFacts
} from '../../appliance/bounce-policy.js'

const DAY = 24 * 3600 * 1000
const NOW = Date.parse('2025-06-01T00:00:00Z')

function directoryWith (t: Test, address: string): { directory: Directory, subscriber: Subscriber } {
  const { store, vault } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const directory = new Directory(store, vault)
  directory.ensureDefaultTopics()
  const { subscriber } = directory.upsertSubscriber({ address: parseAddress(address) })
  return { directory, subscriber }
}

let n = 0
function facts (overrides: Partial<BounceFacts>): BounceFacts {
  return { verdict: 'soft', reason: 'mailbox-full', source: 'dsn', eventId: `e${++n}`, at: NOW, ...overrides }
}

t.test('a mailbox or host that does not exist is suppressed at once', async (t) => {
  for (const reason of ['user-unknown', 'host-unknown'] as const) {
    const { directory, subscriber } = directoryWith(t, `gone.${reason}@docomo.ne.jp`)
    const deps = { store: directory.store, directory }
    t.equal(applyBouncePolicy(deps, subscriber, facts({ verdict: 'hard', reason })), 'suppressed', reason)
    t.ok(directory.isSuppressed(subscriber.index))
    t.match(directory.store.suppressions.get(subscriber.index), { reason: `${reason} (dsn)` })
  }
})

t.test('the third soft bounce within 14 days suppresses; older ones have expired', async (t) => {
  const { directory, subscriber } = directoryWith(t, 'full@au.com')
  const deps = { store: directory.store, directory }
  t.equal(applyBouncePolicy(deps, subscriber, facts({ at: NOW - 20 * DAY })), 'counted')
  t.equal(applyBouncePolicy(deps, subscriber, facts({ at: NOW - 10 * DAY })), 'counted')
  t.equal(applyBouncePolicy(deps, subscriber, facts({ at: NOW - 1 * DAY, reason: 'expired' })), 'counted',
    'the first one is older than 14 days: two in the window')
  t.notOk(directory.isSuppressed(subscriber.index))
  t.equal(applyBouncePolicy(deps, subscriber, facts({ at: NOW })), 'suppressed', 'three in the window')
  t.match(directory.store.suppressions.get(subscriber.index), { reason: '3 soft bounces in 14 days' })
  t.equal(SOFT_BOUNCE_WINDOW_MS, 14 * DAY)
})

t.test("a carrier's domain filter flags the subscriber and never suppresses", async (t) => {
  const { directory, subscriber } = directoryWith(t, 'filtered@ezweb.ne.jp')
  const deps = { store: directory.store, directory }
  for (let i = 0; i < 5; i++) {
    t.equal(applyBouncePolicy(deps, subscriber, facts({ reason: 'filtered', at: NOW + i })), 'flagged')
  }
  t.notOk(directory.isSuppressed(subscriber.index))
  t.match(directory.subscriber(subscriber.id)?.needsDomainAllow, { reason: 'filtered', source: 'dsn' })
})

t.test('refusals about our mail or server do not count toward suppression', async (t) => {
  const { directory, subscriber } = directoryWith(t, 'someone@gmail.com')
  const deps = { store: directory.store, directory }
  for (const reason of ['blocked', 'spam', 'policy', 'message-too-big', 'blocked'] as const) {
    t.equal(applyBouncePolicy(deps, subscriber, facts({ reason })), 'ignored', reason)
  }
  t.equal(applyBouncePolicy(deps, subscriber, facts({ verdict: 'none', reason: 'vacation' })), 'ignored')
  t.notOk(directory.isSuppressed(subscriber.index))
})

t.test('the same event applied twice changes nothing the second time', async (t) => {
  const { directory, subscriber } = directoryWith(t, 'twice@au.com')
  const deps = { store: directory.store, directory }
  const event = facts({ eventId: 'dsn:7' })
  t.equal(applyBouncePolicy(deps, subscriber, event), 'counted')
  for (let i = 0; i < 3; i++) t.equal(applyBouncePolicy(deps, subscriber, event), 'repeated')
  t.notOk(directory.isSuppressed(subscriber.index))
  t.equal(directory.store.bounces.getKeysCount(), 1)
})

t.test("a gateway's 5xx at send time maps onto the same reasons", async (t) => {
  const refusal = (category: string, message: string): Parameters<typeof refusalFacts>[0] =>
    ({ seq: 0, kind: 'rejected', category: category as 'permanent', code: 550, message })
  t.same(refusalFacts(refusal('no-mailbox', '550 5.1.1 User unknown'), true),
    { verdict: 'hard', reason: 'user-unknown', status: '5.1.1' })
  t.same(refusalFacts(refusal('no-mailbox', '550 5.1.2 host not found'), false),
    { verdict: 'hard', reason: 'host-unknown', status: '5.1.2' })
  t.same(refusalFacts(refusal('blocked', '550 5.7.1 Rejected by domain filter'), true),
    { verdict: 'soft', reason: 'filtered', status: '5.7.1' }, 'a carrier gateway: its domain filter')
  t.same(refusalFacts(refusal('blocked', '550 5.7.1 Message rejected as spam'), false),
    { verdict: 'soft', reason: 'blocked', status: '5.7.1' }, 'elsewhere: a block')
  t.same(refusalFacts(refusal('permanent', '552 5.2.2 Mailbox full'), true),
    { verdict: 'soft', reason: 'mailbox-full', status: '5.2.2' })
  t.same(refusalFacts(refusal('permanent', '554 Transaction failed'), true), { verdict: 'soft', reason: 'rejected' })
  t.equal(refusalFacts({ seq: 0, kind: 'deferred', category: 'temporary', code: 451 }, true), undefined)
})
