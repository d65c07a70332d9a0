import t from 'tap'
import { parseAddress, lookupKey, maskAddress, AddressError } from '../../appliance/address.js'

t.test('a legacy carrier address is accepted and quoted for SMTP', async (t) => {
  const a = parseAddress('taro..yamada.@docomo.ne.jp')
  t.equal(a.canonical, 'taro..yamada.@docomo.ne.jp')
  t.equal(a.smtp, '"taro..yamada."@docomo.ne.jp')
})

t.test('the quoted and unquoted spellings are one mailbox', async (t) => {
  const quoted = parseAddress('"taro..yamada."@DoCoMo.ne.jp')
  const bare = parseAddress('<taro..yamada.@docomo.ne.jp>')
  t.equal(lookupKey(quoted), lookupKey(bare))
  t.equal(quoted.smtp, bare.smtp)
})

t.test('a plain address stays unquoted', async (t) => {
  t.equal(parseAddress('hanako.sato@au.com').smtp, 'hanako.sato@au.com')
})

t.test('bad addresses are refused with a reason', async (t) => {
  const cases: Array<[string, string]> = [
    ['', 'empty'],
    ['no-at-sign', 'no-at'],
    ['a@localhost', 'bad-domain'],
    ['a b@docomo.ne.jp', 'bad-local'],
    ['a@docomo.ne.jp\r\nBcc: x@y.jp', 'control-char'],
    ['名無し@host.invalid', 'non-ascii'],
    [`${'a'.repeat(65)}@docomo.ne.jp`, 'bad-local']
  ]
  for (const [input, problem] of cases) {
    t.throws(() => parseAddress(input), new AddressError(problem as never, ''), input)
  }
})

t.test('an address is masked for display', async (t) => {
  t.equal(maskAddress('taro.yamada@docomo.ne.jp'), 'ta***@docomo.ne.jp')
  t.equal(maskAddress('a@au.com'), 'a***@au.com')
})
