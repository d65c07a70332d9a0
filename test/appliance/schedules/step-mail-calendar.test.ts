import t from 'tap'
import { addDays, dueDay, hourIn } from '../../../appliance/schedules/step-mail-calendar.js'

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
