import t from 'tap'
import { classifyFailure } from '../../workers/smtp-outcome.js'

const reply = (code: number, text: string): Error => Object.assign(new Error(text), { responseCode: code, response: `${code} ${text}` })

t.test('a gateway closing an idle session is a lost connection, not a request to slow down', async (t) => {
  for (const text of ['Timeout - closing connection', '4.4.2 mx.example.jp Error: timeout exceeded', 'Idle time-out']) {
    t.match(classifyFailure(1, reply(421, text)), { kind: 'deferred', category: 'connection', code: 421 }, text)
  }
})

t.test('421 and 4.7.x otherwise slow the route down; other 4xx are temporary; 5xx by their class', async (t) => {
  t.match(classifyFailure(1, reply(421, '4.7.0 Try again later, closing connection')), { category: 'throttled' })
  t.match(classifyFailure(1, reply(450, '4.7.1 Too many messages')), { category: 'throttled' })
  t.match(classifyFailure(1, reply(451, '4.3.0 Temporary failure')), { kind: 'deferred', category: 'temporary' })
  t.match(classifyFailure(1, reply(550, '5.1.1 User unknown')), { kind: 'rejected', category: 'no-mailbox' })
  t.match(classifyFailure(1, reply(550, '5.7.1 Rejected by the domain filter')), { kind: 'rejected', category: 'blocked' })
  t.match(classifyFailure(1, new Error('connect ECONNREFUSED')), { kind: 'deferred', category: 'connection' })
})
