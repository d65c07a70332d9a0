// Runs in the CLI (demo, bench) and the tests: a sample city — the city office, three schools with
// grades and classes, a kindergarten and the fire department — and synthetic subscribers spread
// over the carriers, some with the legacy addresses carriers issued before 2009.

import type { Directory } from '../appliance/directory.js'
import { parseAddress } from '../appliance/address.js'

export const CARRIER_DOMAINS = [
  'docomo.ne.jp', 'au.com', 'ezweb.ne.jp', 'softbank.ne.jp', 'i.softbank.jp', 'gmail.com', 'yahoo.co.jp'
] as const

/** Routes of the sample city: one gateway per carrier; other domains take the default route. */
export const CARRIER_ROUTES: Array<{ name: string, domains: string[] }> = [
  { name: 'docomo', domains: ['docomo.ne.jp'] },
  { name: 'au', domains: ['au.com', 'ezweb.ne.jp'] },
  { name: 'softbank', domains: ['softbank.ne.jp', 'i.softbank.jp'] }
]

export const CITY = 'matsuyama'

const SCHOOLS = [
  { id: 'higashi-es', name: '松山市立東小学校', postalAddress: '愛媛県松山市東町1-1', grades: 6 },
  { id: 'nishi-es', name: '松山市立西小学校', postalAddress: '愛媛県松山市西町2-2', grades: 6 },
  { id: 'chuo-jhs', name: '松山市立中央中学校', postalAddress: '愛媛県松山市中央3-3', grades: 3 }
]

export interface SampleCity {
  cityId: string
  schools: string[]
  kindergarten: string
  fireDepartment: string
  /** group ids by organisation and path, e.g. groups['higashi-es']['1年/2組'] */
  groups: Record<string, Record<string, string>>
}

/** Creates the organisations and their groups; returns their ids. */
export function createSampleCity (directory: Directory): SampleCity {
  directory.createOrganisation({
    id: CITY, name: '松山市', kind: 'city', postalAddress: '愛媛県松山市二番町4-7-2', phone: '089-948-6688'
  })
  const groups: SampleCity['groups'] = {}
  for (const school of SCHOOLS) {
    directory.createOrganisation({
      id: school.id, name: school.name, kind: 'school', parentId: CITY, postalAddress: school.postalAddress
    })
    groups[school.id] = createSchoolGroups(directory, school.id, school.grades)
  }
  directory.createOrganisation({
    id: 'hoshi-kg', name: '松山市立星の子幼稚園', kind: 'kindergarten', parentId: CITY,
    postalAddress: '愛媛県松山市星町4-4'
  })
  groups['hoshi-kg'] = {}
  for (const name of ['年少', '年中', '年長']) {
    groups['hoshi-kg'][name] = directory.createGroup('hoshi-kg', name).id
  }
  directory.createOrganisation({
    id: 'fire-dept', name: '松山市消防局', kind: 'fire-department', parentId: CITY,
    postalAddress: '愛媛県松山市本町6-6'
  })
  return {
    cityId: CITY, schools: SCHOOLS.map((s) => s.id), kindergarten: 'hoshi-kg', fireDepartment: 'fire-dept', groups
  }
}

function createSchoolGroups (directory: Directory, orgId: string, grades: number): Record<string, string> {
  const out: Record<string, string> = {}
  for (let g = 1; g <= grades; g++) {
    const grade = directory.createGroup(orgId, `${g}年`)
    out[grade.name] = grade.id
    for (let c = 1; c <= 3; c++) out[`${g}年/${c}組`] = directory.createGroup(orgId, `${c}組`, grade.id).id
  }
  for (const name of ['PTA', '教職員']) out[name] = directory.createGroup(orgId, name).id
  return out
}

/** A deterministic PRNG (mulberry32): the same seed gives the same city. */
export function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The n-th synthetic address: every 25th a legacy `..` or `.@` one. */
export function syntheticAddress (n: number, domain: string): string {
  if (n % 50 === 7) return `parent..${n}@${domain}`
  if (n % 50 === 32) return `parent${n}.@${domain}`
  return `parent${n}@${domain}`
}

/**
 * Adds `count` subscribers spread over the carriers and over the city's class groups (every
 * subscriber in one class, in transactions of 1,000). Returns the subscriber ids.
 */
export function seedSubscribers (
  directory: Directory, city: SampleCity, count: number, options: { seed?: number, domains?: readonly string[] } = {}
): number[] {
  const random = seededRandom(options.seed ?? 1)
  const domains = options.domains ?? CARRIER_DOMAINS
  const classes = Object.entries(city.groups).flatMap(([orgId, g]) =>
    Object.entries(g).filter(([path]) => path.includes('/') || orgId === city.kindergarten)
      .map(([, id]) => ({ orgId, id })))
  const ids: number[] = []

  for (let start = 0; start < count; start += 1000) {
    directory.store.root.transactionSync(() => {
      for (let n = start; n < Math.min(count, start + 1000); n++) {
        const domain = domains[Math.floor(random() * domains.length)] as string
        const address = parseAddress(syntheticAddress(n, domain))
        const { subscriber } = directory.upsertSubscriber({ address, name: `保護者 ${n}` })
        const place = classes[Math.floor(random() * classes.length)] as { orgId: string, id: string }
        directory.addMembership(subscriber.id, place.orgId, place.id)
        ids.push(subscriber.id)
      }
    })
  }
  return ids
}
