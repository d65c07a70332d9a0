import t from 'tap'
import { addDays, dueDay, hourIn } from '../../../appliance/schedules/step-mail-calendar.js'
import { dueByChildDate } from '../../../appliance/schedules/step-mail.js'

t.test('an entry falls due on the same day of the month, or the month\'s last day', async (t) => {
  const cases: Array<[string, number, number, string]> = [
    ['2026-04-15', 0, 0, '2026-04-15'],
    ['2026-04-15', 1, 0, '2026-05-15'],
    ['2026-04-15', 12, 0, '2027-04-15'],
    ['2026-08-15', -3, 0, '2026-05-15'],
    ['2026-01-31', 1, 0, '2026-02-28'],
    ['2028-01-31', 1, 0, '2028-02-29'],
    ['2026-03-31', 1, 7, '2026-05-07'],
    ['2026-12-10', 1, 0, '2027-01-10'],
    ['2026-01-05', -2, -10, '2025-10-26'],
    ['2024-02-29', 12, 0, '2025-02-28']
  ]
  for (const [date, months, days, expected] of cases) {
    t.equal(dueDay(date, months, days), expected, `${date} + ${months} months + ${days} days`)
  }
  t.equal(addDays('2026-03-01', -1), '2026-02-28')
})

t.test('the hour is read in the city\'s time zone', async (t) => {
  t.equal(hourIn('Asia/Tokyo', new Date('2026-05-15T00:30:00Z')), 9)
  t.equal(hourIn('Asia/Tokyo', new Date('2026-05-15T15:00:00Z')), 0)
})

t.test('the children due in a window are found from the window, month ends included', async (t) => {
  const entries = [[-3, 0], [0, -7], [1, 0], [1, 7], [2, 0], [12, 0], [-1, 0], [36, -30]]
    .map(([month, day], i) => ({
      id: i + 1, organisationId: 'matsuyama', month: month as number, day: day as number, subject: 's',
      body: 'b', topic: null, createdBy: 'test', createdAt: ''
    }))
  for (const window of [{ from: '2026-02-26', through: '2026-03-03' }, { from: '2028-02-27', through: '2028-03-31' }]) {
    const found = dueByChildDate(entries, window)
    const expected = new Map<string, string[]>()
    for (let date = '2022-01-01'; date <= '2029-12-31'; date = addDays(date, 1)) {
      for (const entry of entries) {
        const day = dueDay(date, entry.month, entry.day)
        if (day >= window.from && day <= window.through) expected.set(date, [...(expected.get(date) ?? []), `${entry.id}@${day}`])
      }
    }
    const actual = new Map([...found].map(([date, list]) => [date, list.map((d) => `${d.entry.id}@${d.day}`).sort()]))
    t.same(new Map([...actual].sort()), new Map([...expected].map(([d, l]) => [d, l.sort()] as const).sort()),
      `${window.from}…${window.through}`)
  }
})
