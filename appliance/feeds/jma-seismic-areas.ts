// Runs in the appliance: the areas of the earthquake and tsunami telegrams — observed intensity
// per 細分区域 (VXSE51/53), forecast intensity of the early warning (VXSE43), and the tsunami
// forecast regions (VTSE41/51).

import { LEVELS, type AreaChange, type HazardArea } from './hazard-event.js'
import { all, first, textAt, type XmlElement } from './xml-document.js'

/** 5- → 5弱, 6+ → 6強: the words people read, from the codes JMA writes. */
export function intensityWords (code: string): string {
  return code.replace('-', '弱').replace('+', '強')
}

/** Body/Intensity/Observation/Pref/Area: the highest intensity observed in each region. */
export function intensityAreas (body: XmlElement | undefined): HazardArea[] {
  const out: HazardArea[] = []
  for (const pref of all(first(body, 'Intensity', 'Observation'), 'Pref')) {
    for (const area of all(pref, 'Area')) {
      const observed = observedIntensity(area)
      if (observed === undefined) continue
      out.push({
        table: 'jma-seismic',
        code: textAt(area, 'Code'),
        name: textAt(area, 'Name'),
        label: observed.label,
        level: observed.level,
        change: 'new'
      })
    }
  }
  return out
}

// An area whose stations reported 震度5弱以上未入電 (strong shaking, reading not yet received)
// has no MaxInt: it counts as 5弱, the least such a report can mean.
function observedIntensity (area: XmlElement): { label: string, level: number } | undefined {
  const maxInt = textAt(area, 'MaxInt')
  const level = LEVELS.earthquake[maxInt]
  if (level !== undefined) return { label: `震度${intensityWords(maxInt)}`, level }
  const unreported = all(area, 'City').some((c) => textAt(c, 'Condition').includes('未入電'))
  if (!unreported) return undefined
  return { label: '震度5弱以上未入電', level: LEVELS.earthquake['5-'] ?? 5 }
}

/**
 * Body/Intensity/Forecast/Pref/Area: each region under the early warning. Its level is the
 * forecast intensity (ForecastInt/From) when that is on the scale (5弱 and up); below that, being
 * under a warning at all counts as 緊急地震速報 (1). Every warned region is new, also in a later
 * serial: LastKind tells only that a region was warned, not at what intensity, and a forecast
 * that rises to 5弱 must reach the rules (they alert once per incident unless the level rises).
 */
export function eewAreas (body: XmlElement | undefined): HazardArea[] {
  const out: HazardArea[] = []
  for (const pref of all(first(body, 'Intensity', 'Forecast'), 'Pref')) {
    for (const area of all(pref, 'Area')) {
      const kind = first(area, 'Category', 'Kind')
      const warned = isWarning(kind)
      const from = textAt(area, 'ForecastInt', 'From')
      const level = warned ? Math.max(LEVELS.eew['緊急地震速報'] ?? 1, LEVELS.eew[from] ?? 0) : 0
      out.push({
        table: 'jma-seismic',
        code: textAt(area, 'Code'),
        name: textAt(area, 'Name'),
        label: `${textAt(kind, 'Name')}${forecastWords(area)}`,
        level,
        change: warned ? 'new' : 'none'
      })
    }
  }
  return out
}

// Kind codes 10, 11 and 19 are the warning (主要動未到達, 既に到達と推測, 到達予想なし)
function isWarning (kind: XmlElement | undefined): boolean {
  return textAt(kind, 'Code').startsWith('1') || textAt(kind, 'Name').includes('警報')
}

function forecastWords (area: XmlElement): string {
  const [from, to] = [textAt(area, 'ForecastInt', 'From'), textAt(area, 'ForecastInt', 'To')]
  if (from === '') return ''
  if (to === 'over') return ` 予想震度${intensityWords(from)}以上`
  if (to === '' || to === from) return ` 予想震度${intensityWords(from)}`
  return ` 予想震度${intensityWords(from)}〜${intensityWords(to)}`
}

/** Body/Tsunami/Forecast/Item: each forecast region with its warning, advisory or forecast. */
export function tsunamiAreas (body: XmlElement | undefined): HazardArea[] {
  return all(first(body, 'Tsunami', 'Forecast'), 'Item').map((item) => {
    const area = first(item, 'Area')
    const now = tsunamiGrade(textAt(item, 'Category', 'Kind', 'Name'))
    const before = tsunamiGrade(textAt(item, 'Category', 'LastKind', 'Name'))
    return {
      table: 'jma-tsunami',
      code: textAt(area, 'Code'),
      name: textAt(area, 'Name'),
      label: textAt(item, 'Category', 'Kind', 'Name'),
      level: now.level,
      change: tsunamiChange(now, before)
    }
  })
}

interface TsunamiGrade { level: number, lifted: boolean }

/** 大津波警報 4, 津波警報 3, 津波注意報 2, 津波予報 1; 解除 and 津波なし put nothing in force. */
function tsunamiGrade (name: string): TsunamiGrade {
  const scale = LEVELS.tsunami
  if (name === '' || name.includes('津波なし')) return { level: 0, lifted: false }
  if (name.includes('解除')) return { level: 0, lifted: true }
  for (const word of ['大津波警報', '津波警報', '津波注意報', '津波予報']) {
    if (name.includes(word)) return { level: scale[word] ?? 0, lifted: false }
  }
  return { level: 0, lifted: false }
}

// A region already under the same or a higher grade (LastKind) is no news: a lower grade after a
// higher one is the hazard going on one step lower. A higher grade than before is new.
function tsunamiChange (now: TsunamiGrade, before: TsunamiGrade): AreaChange {
  if (now.lifted) return 'lifted'
  if (now.level === 0) return before.level > 0 ? 'lifted' : 'none'
  return now.level > before.level ? 'new' : 'continued'
}
