// The configuration of the disaster feeds and the alert rules: which feeds are polled, which
// areas the city watches in each JMA code table, how long an automatic alert is held, and the
// rules that seed the store (staff change rules later through the API; see alert-rules.ts).

import { Type, type Static } from '@sinclair/typebox'

const JMA_FEEDS = 'https://www.data.jma.go.jp/developer/xml/feed'

const Feed = Type.Object({
  url: Type.String({ pattern: '^https?://\\S+$' }),
  /** 0: read on start and after a gap only (the long feeds), never on a timer */
  everySeconds: Type.Integer({ minimum: 0, maximum: 86400, default: 60 })
}, { additionalProperties: false })

const Kind = Type.Union([
  Type.Literal('weather-warning'), Type.Literal('landslide'), Type.Literal('earthquake'),
  Type.Literal('eew'), Type.Literal('tsunami'), Type.Literal('other')
])

const Targets = Type.Object({
  organisations: Type.Optional(Type.Array(Type.String({ maxLength: 40 }), { maxItems: 500 })),
  groupPaths: Type.Optional(Type.Array(Type.String({ maxLength: 300 }), { maxItems: 500 })),
  topics: Type.Optional(Type.Array(Type.String({ maxLength: 40 }), { maxItems: 50 }))
}, { additionalProperties: false, default: {} })

export const AlertRuleSchema = Type.Object({
  id: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,59}$' }),
  name: Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\r\\n]+$' }),
  kind: Kind,
  /** the threshold in the kind's words: 警報, 特別警報, 5弱, 大津波警報 (hazard-event.ts LEVELS) */
  minLevel: Type.String({ minLength: 1, maxLength: 20 }),
  /** area codes in the kind's table; the watched areas of that table when absent */
  areas: Type.Optional(Type.Array(Type.String({ pattern: '^[0-9A-Za-z.-]{1,20}$' }), { maxItems: 200 })),
  /** the organisation the alert is sent as */
  organisation: Type.String({ minLength: 1, maxLength: 40 }),
  targets: Targets,
  priority: Type.Union([Type.Literal('emergency'), Type.Literal('normal')], { default: 'emergency' }),
  /** draft: a person approves it; auto: it goes after the hold time unless withdrawn */
  mode: Type.Union([Type.Literal('draft'), Type.Literal('auto')], { default: 'draft' }),
  /** overrides feeds.holdMinutes for this rule */
  holdMinutes: Type.Optional(Type.Number({ minimum: 0, maximum: 1440 })),
  /** alert: a one-way broadcast; safety-check: a broadcast asking everyone to answer */
  action: Type.Union([Type.Literal('alert'), Type.Literal('safety-check')], { default: 'alert' }),
  /** drill mode: drill (訓練) telegrams make an alert marked 【訓練】 to these targets only */
  drill: Type.Optional(Type.Object({
    enabled: Type.Boolean({ default: false }),
    targets: Targets
  }, { additionalProperties: false })),
  enabled: Type.Boolean({ default: true })
}, { additionalProperties: false })

export type AlertRuleConfig = Static<typeof AlertRuleSchema>

export const FeedsConfigSchema = Type.Object({
  jma: Type.Object({
    /** off by default: the appliance reaches the JMA server only when an operator says so */
    enabled: Type.Boolean({ default: false }),
    /**
     * Weather and landslide telegrams are fetched only from these issuing offices (the entry's
     * author): the feed lists every prefecture's, hundreds a day. Empty: from every office.
     * Earthquake, early-warning and tsunami telegrams come from national offices: always read.
     */
    offices: Type.Array(Type.String({ minLength: 1 }), { default: ['松山地方気象台'] }),
    feeds: Type.Array(Feed, {
      default: [
        { url: `${JMA_FEEDS}/extra.xml`, everySeconds: 60 },
        { url: `${JMA_FEEDS}/eqvol.xml`, everySeconds: 60 },
        { url: `${JMA_FEEDS}/extra_l.xml`, everySeconds: 0 },
        { url: `${JMA_FEEDS}/eqvol_l.xml`, everySeconds: 0 }
      ]
    })
  }, { additionalProperties: false, default: {} }),
  cap: Type.Object({
    feeds: Type.Array(Feed, { default: [] })
  }, { additionalProperties: false, default: {} }),
  /** the User-Agent of every poll: the publisher asks clients to name themselves */
  userAgent: Type.String({ default: 'Mimamori alert appliance', pattern: '^[^\\r\\n]+$' }),
  /** a failed poll is retried after 15 s, doubling up to this */
  maxBackoffSeconds: Type.Integer({ minimum: 15, maximum: 86400, default: 900 }),
  /** the areas the city watches, per code table; the defaults are Matsuyama's */
  areas: Type.Object({
    'jma-weather': Type.Array(Type.String(), { default: ['3820100', '380010', '380000'] }),
    'jma-seismic': Type.Array(Type.String(), { default: ['621'] }),
    'jma-tsunami': Type.Array(Type.String(), { default: ['601'] }),
    cap: Type.Array(Type.String(), { default: [] })
  }, { additionalProperties: false, default: {} }),
  /** how long an automatic alert waits, per kind, so that a mistaken report can be withdrawn */
  holdMinutes: Type.Object({
    'weather-warning': Type.Number({ minimum: 0, maximum: 1440, default: 10 }),
    landslide: Type.Number({ minimum: 0, maximum: 1440, default: 10 }),
    earthquake: Type.Number({ minimum: 0, maximum: 1440, default: 0 }),
    eew: Type.Number({ minimum: 0, maximum: 1440, default: 0 }),
    tsunami: Type.Number({ minimum: 0, maximum: 1440, default: 0 }),
    other: Type.Number({ minimum: 0, maximum: 1440, default: 10 })
  }, { additionalProperties: false, default: {} }),
  rules: Type.Array(AlertRuleSchema, { default: [], maxItems: 500 })
}, { additionalProperties: false, default: {} })

export type FeedsConfig = Static<typeof FeedsConfigSchema>
