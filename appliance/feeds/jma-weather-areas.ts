// Runs in the appliance: the areas of the weather telegrams — 気象特別警報・警報・注意報 (VPWW53/54)
// and 土砂災害警戒情報 (VXWW50) — with what is in force in each, on the weather-warning scale.

import { LEVELS, type AreaChange, type HazardArea } from './hazard-event.js'
import { all, first, textAt, type XmlElement } from './xml-document.js'

interface KindInArea { name: string, status: string }

/**
 * Every Item of every Warning (府県予報区, 一次細分区域, 市町村等をまとめた地域, 市町村等), since a
 * rule may watch 愛媛県 380000, 中予 380010 or 松山市 3820100; one area per code.
 */
export function weatherWarningAreas (body: XmlElement | undefined): HazardArea[] {
  const byCode = new Map<string, { name: string, kinds: KindInArea[] }>()
  for (const warning of all(body, 'Warning')) {
    for (const item of all(warning, 'Item')) {
      const kinds = all(item, 'Kind').map((k) => ({
        name: textAt(k, 'Name'), status: textAt(k, 'Status')
      }))
      for (const area of areasOf(item)) {
        const code = textAt(area, 'Code')
        const known = byCode.get(code) ?? { name: textAt(area, 'Name'), kinds: [] }
        known.kinds.push(...kinds)
        byCode.set(code, known)
      }
    }
  }
  return [...byCode].map(([code, { name, kinds }]) => ({
    table: 'jma-weather', code, name, ...inForce(kinds)
  }))
}

function areasOf (item: XmlElement): XmlElement[] {
  return [...all(item, 'Area'), ...all(first(item, 'Areas'), 'Area')]
}

/** The level of a warning kind by its name: …注意報 2, …警報 3, …危険警報 4, …特別警報 5. */
export function warningLevel (name: string): number {
  const scale = LEVELS['weather-warning']
  for (const word of ['特別警報', '危険警報', '警報', '注意報']) {
    if (name.endsWith(word)) return scale[word] ?? 0
  }
  return 0
}

// 特別警報から警報 and the like: the hazard stays in force one step lower, which is no news
function changeOf (status: string): AreaChange {
  if (status === '発表') return 'new'
  if (status === '継続' || status.includes('から')) return 'continued'
  if (status === '解除') return 'lifted'
  return 'none'
}

/** The highest kind in force decides the level; the area is new when such a kind is new. */
function inForce (kinds: KindInArea[]): Pick<HazardArea, 'label' | 'level' | 'change'> {
  const active = kinds
    .filter((k) => k.name !== '' && ['new', 'continued'].includes(changeOf(k.status)))
    .map((k) => ({ ...k, level: warningLevel(k.name) }))
    .sort((a, b) => b.level - a.level)
  const top = active[0]
  if (top !== undefined) {
    const isNew = active.some((k) => k.level === top.level && changeOf(k.status) === 'new')
    const label = unique(active.map((k) => k.name)).join('・')
    return { label, level: top.level, change: isNew ? 'new' : 'continued' }
  }
  const lifted = kinds.filter((k) => k.name !== '' && changeOf(k.status) === 'lifted')
  if (lifted.length > 0) {
    return { label: unique(lifted.map((k) => `${k.name}解除`)).join('・'), level: 0, change: 'lifted' }
  }
  return { label: '発表警報・注意報はなし', level: 0, change: 'none' }
}

/** 土砂災害警戒情報 per municipality: 警戒 is in force (発表 or 継続), else 解除 or なし. */
export function landslideAreas (body: XmlElement | undefined): HazardArea[] {
  const level = LEVELS.landslide['土砂災害警戒情報'] ?? 4
  const out: HazardArea[] = []
  for (const warning of all(body, 'Warning')) {
    for (const item of all(warning, 'Item')) {
      const kind = first(item, 'Kind')
      const change = changeOf(textAt(kind, 'Status'))
      const warned = textAt(kind, 'Name') === '警戒' && (change === 'new' || change === 'continued')
      for (const area of areasOf(item)) {
        out.push({
          table: 'jma-weather',
          code: textAt(area, 'Code'),
          name: textAt(area, 'Name'),
          label: warned ? '土砂災害警戒情報' : change === 'lifted' ? '土砂災害警戒情報解除' : 'なし',
          level: warned ? level : 0,
          change: warned ? change : change === 'lifted' ? 'lifted' : 'none'
        })
      }
    }
  }
  return out
}

function unique (names: string[]): string[] {
  return [...new Set(names)]
}
