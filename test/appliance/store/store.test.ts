import t from 'tap'
import { createHash } from 'node:crypto'
import { readFileSync, statSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openStore, DATA_FILE, KEY_FILE } from '../../../appliance/store/store.js'
import { Directory } from '../../../appliance/directory.js'
import { parseAddress } from '../../../appliance/address.js'

const digest = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex')

async function seeded (dir: string): Promise<void> {
  const { store, vault } = openStore(dir)
  const directory = new Directory(store, vault)
  directory.ensureDefaultTopics()
  directory.upsertSubscriber({ address: parseAddress('hanako.sato@docomo.ne.jp'), name: '佐藤 花子' })
  await store.close()
}

t.test('a new data folder gets a key file readable by its owner only', async (t) => {
  const dir = t.testdir()
  await seeded(dir)
  t.equal(statSync(join(dir, KEY_FILE)).mode & 0o777, 0o600)
})

t.test('addresses are sealed at rest and found again through the blind index', async (t) => {
  const dir = t.testdir()
  await seeded(dir)
  const raw = readFileSync(join(dir, DATA_FILE))
  t.equal(raw.indexOf('hanako.sato'), -1, 'the address is not in the data file in clear')
  t.equal(raw.indexOf(Buffer.from('佐藤 花子')), -1, 'nor the name')

  const { store, vault } = openStore(dir)
  t.teardown(async () => { await store.close() })
  const directory = new Directory(store, vault)
  const found = directory.findSubscriber(parseAddress('Hanako.Sato@DOCOMO.ne.jp'))
  t.ok(found, 'found by the other spelling')
  t.same(directory.contact(found!), { a: 'hanako.sato@docomo.ne.jp', n: '佐藤 花子' })
})

t.test('a missing key file beside existing data stops start-up and changes nothing', async (t) => {
  const dir = t.testdir()
  await seeded(dir)
  const before = digest(join(dir, DATA_FILE))
  rmSync(join(dir, KEY_FILE))

  t.throws(() => openStore(dir), { code: 'MIMAMORI_KEY_MISSING', message: /key file .* is missing/ })
  t.equal(digest(join(dir, DATA_FILE)), before, 'the data file is untouched')
  t.throws(() => openStore(dir), { code: 'MIMAMORI_KEY_MISSING' }, 'and no new key was made')
})

t.test('a wrong key stops start-up and changes nothing', async (t) => {
  const dir = t.testdir()
  await seeded(dir)
  const before = digest(join(dir, DATA_FILE))
  writeFileSync(join(dir, KEY_FILE), Buffer.alloc(32, 7).toString('base64'))

  t.throws(() => openStore(dir), { code: 'MIMAMORI_KEY_WRONG' })
  t.equal(digest(join(dir, DATA_FILE)), before)
})

t.test('a key file that is not a key is refused with a clear error', async (t) => {
  const dir = t.testdir()
  await seeded(dir)
  writeFileSync(join(dir, KEY_FILE), 'not a key\n')
  t.throws(() => openStore(dir), { code: 'MIMAMORI_KEY_UNREADABLE' })
})

t.test('an operator-given key file is used for a new data folder', async (t) => {
  const dir = t.testdir({ 'my.key': Buffer.alloc(32, 3).toString('base64') })
  const keyFile = join(dir, 'my.key')
  const { store, vault } = openStore(join(dir, 'data'), keyFile)
  await store.close()
  t.same(vault.masterKey, Buffer.alloc(32, 3))
  const again = openStore(join(dir, 'data'), keyFile)
  await again.store.close()
  t.pass('reopened with the same key')
})
