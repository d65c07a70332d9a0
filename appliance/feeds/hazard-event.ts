// Runs in the appliance: what a disaster feed tells us, whatever its format. A JMA telegram and
// a CAP alert are both read into a HazardEvent; the alert rules (alert-rules.ts) decide from it
// alone whether and to whom an alert goes.

/** What happened. Each kind has its own area code table and its own scale of levels. */
export type HazardKind =
  | 'weather-warning' // VPWW53/54 気象特別警報・警報・注意報 (with the 2026 危険警報)
  | 'landslide' // VXWW50 土砂災害警戒情報
  | 'earthquake' // VXSE51 震度速報, VXSE52 震源, VXSE53 震源・震度
  | 'eew' // VXSE43 緊急地震速報（警報）
  | 'tsunami' // VTSE41 津波警報・注意報・予報, VTSE51 津波情報
  | 'other' // a CAP alert that maps to none of the above

/**
 * The code table an area code belongs to. JMA uses different tables per kind: 松山市 is 3820100
 * among weather-warning areas (中予 380010, 愛媛県 380000), 愛媛県中予 is 621 among earthquake
 * intensity regions, and 愛媛県瀬戸内海沿岸 is 601 among tsunami forecast regions.
 */
export type AreaTable = 'jma-weather' | 'jma-seismic' | 'jma-tsunami' | 'cap'

/** The table each kind's areas are coded in (CAP areas keep their own geocodes). */
export const AREA_TABLE: Record<Exclude<HazardKind, 'other'>, AreaTable> = {
  'weather-warning': 'jma-weather',
  landslide: 'jma-weather',
  earthquake: 'jma-seismic',
  eew: 'jma-seismic',
  tsunami: 'jma-tsunami'
}

/** What changed in an area with this telegram. */
export type AreaChange = 'new' | 'continued' | 'lifted' | 'none'

export interface HazardArea {
  table: AreaTable
  code: string
  name: string
  /** what is in force there, in the telegram's words: 大雨特別警報, 震度5弱, 大津波警報 */
  label: string
  /** the level on the kind's scale (see LEVELS); 0 when nothing is in force */
  level: number
  change: AreaChange
}

export interface HazardEvent {
  source: 'jma' | 'cap'
  /** this telegram or alert: seen once, never acted on twice */
  id: string
  /** the event it belongs to: a correction or cancellation names the same key */
  eventKey: string
  /**
   * The happening several telegrams report on (JMA's EventID; a CAP alert's first identifier):
   * a rule alerts once per incident, and again only when the level rises. eventKey when absent.
   */
  incidentKey?: string
  kind: HazardKind
  /** 通常 → actual, 訓練 → drill, 試験 → test (CAP: Actual, Exercise, Test/System/Draft) */
  status: 'actual' | 'drill' | 'test'
  /** 発表 → issue, 訂正 → correction, 取消 → cancel (CAP: Alert/Update, Cancel/Error) */
  infoType: 'issue' | 'correction' | 'cancel'
  /** the telegram type (VPWW54, VXSE53 …) or the CAP event */
  type: string
  title: string
  headline: string
  issuedBy: string
  reportedAt: string
  areas: HazardArea[]
}

/**
 * The levels of each kind, by the words a rule may use for its threshold. An earthquake's level
 * is its seismic intensity (5弱 = 5, 5強 = 6 …), so that "震度5弱以上" is `minLevel: 5弱`.
 */
export const LEVELS: Record<HazardKind, Record<string, number>> = {
  'weather-warning': { 注意報: 2, 警報: 3, 危険警報: 4, 特別警報: 5 },
  landslide: { 土砂災害警戒情報: 4 },
  earthquake: { 1: 1, 2: 2, 3: 3, 4: 4, '5-': 5, '5弱': 5, '5+': 6, '5強': 6, '6-': 7, '6弱': 7, '6+': 8, '6強': 8, 7: 9 },
  eew: { 緊急地震速報: 1, '5-': 5, '5弱': 5, '5+': 6, '5強': 6, '6-': 7, '6弱': 7, '6+': 8, '6強': 8, 7: 9 },
  tsunami: { 津波予報: 1, 津波注意報: 2, 津波警報: 3, 大津波警報: 4 },
  // a CAP alert's <severity>
  other: { Minor: 1, Moderate: 2, Severe: 3, Extreme: 4 }
}

/** The level a threshold word stands for in a kind, or undefined when the word is unknown. */
export function levelOf (kind: HazardKind, word: string): number | undefined {
  const normal = word.replace(/^震度/, '').replace(/以上$/, '').trim()
  return LEVELS[kind][normal]
}
