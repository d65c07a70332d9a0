// The appliance's configuration: one schema with defaults, read from a YAML or TOML file plus
// MIMAMORI_* environment overrides, checked at start; unknown keys are refused.

import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { resolve, dirname } from 'node:path'
import { Type, type Static, type TSchema, Kind } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import YAML from 'yaml'
import { parse as parseToml } from 'smol-toml'
import { parseAddress, AddressError } from './address.js'
import { MimamoriError } from './errors.js'
import { FeedsConfigSchema } from './feeds/feeds-config.js'
import { LEVELS, levelOf } from './feeds/hazard-event.js'

const Port = Type.Integer({ minimum: 0, maximum: 65535 })

const RouteLimits = {
  maxConnections: Type.Integer({ minimum: 1, maximum: 200, default: 10 }),
  messagesPerSecond: Type.Number({ minimum: 0.1, maximum: 100000, default: 1000 }),
  recipientsPerSession: Type.Integer({ minimum: 1, maximum: 100000, default: 1000 }),
  connectTimeoutSeconds: Type.Number({ minimum: 1, maximum: 300, default: 30 })
}

export const RouteSchema = Type.Object({
  name: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,39}$' }),
  domains: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
  host: Type.String({ minLength: 1 }),
  port: Type.Integer({ minimum: 1, maximum: 65535, default: 25 }),
  ...RouteLimits
}, { additionalProperties: false })

export const DefaultRouteSchema = Type.Object({
  name: Type.String({ default: 'default', pattern: '^[a-z0-9][a-z0-9_-]{0,39}$' }),
  mode: Type.Union([Type.Literal('smarthost'), Type.Literal('mx')], { default: 'mx' }),
  host: Type.Optional(Type.String({ minLength: 1 })),
  port: Type.Integer({ minimum: 1, maximum: 65535, default: 25 }),
  // The name servers of the MX look-ups, "IP" or "IP:port" ("[IPv6]:port"); the system's if absent.
  dnsServers: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: 4 })),
  ...RouteLimits
}, { additionalProperties: false, default: {} })

export const ConfigSchema = Type.Object({
  dataDir: Type.String({ default: './data' }),
  keyFile: Type.Optional(Type.String()),
  timeZone: Type.String({ default: 'Asia/Tokyo' }),
  publicBaseUrl: Type.String({ default: 'http://127.0.0.1:8080', pattern: '^https?://[^\\s/]+(/[^\\s]*)?$' }),
  mailDomain: Type.String({ default: 'mimamori.example.jp', pattern: '^[a-z0-9.-]+\\.[a-z]{2,}$' }),
  log: Type.Object({
    level: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
      .map((l) => Type.Literal(l)), { default: 'info' })
  }, { additionalProperties: false, default: {} }),
  http: Type.Object({
    host: Type.String({ default: '127.0.0.1' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 })
  }, { additionalProperties: false, default: {} }),
  smtp: Type.Object({
    host: Type.String({ default: '127.0.0.1' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 2525 }),
    maxMessageBytes: Type.Integer({ minimum: 1024, default: 10 * 1024 * 1024 })
  }, { additionalProperties: false, default: {} }),
  sender: Type.Object({
    address: Type.Optional(Type.String()),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\r\\n]+$' }))
  }, { additionalProperties: false, default: {} }),
  dkim: Type.Optional(Type.Object({
    domain: Type.String(),
    selector: Type.String({ pattern: '^[A-Za-z0-9._-]+$' }),
    keyFile: Type.String()
  }, { additionalProperties: false })),
  delivery: Type.Object({
    workers: Type.Integer({ minimum: 1, maximum: 32, default: 2 }),
    batchSize: Type.Integer({ minimum: 1, maximum: 1000, default: 50 }),
    tasksPerRoute: Type.Integer({ minimum: 1, maximum: 64, default: 4 }),
    retryBaseSeconds: Type.Number({ minimum: 0.01, default: 60 }),
    retryMaxSeconds: Type.Number({ minimum: 0.01, default: 3600 }),
    maxAttempts: Type.Integer({ minimum: 1, maximum: 100, default: 12 }),
    slowdownSeconds: Type.Number({ minimum: 0, default: 30 })
  }, { additionalProperties: false, default: {} }),
  feeds: FeedsConfigSchema,
  signup: Type.Object({
    linkMinutes: Type.Integer({ minimum: 5, maximum: 10080, default: 60 }),
    linksPerHour: Type.Integer({ minimum: 1, maximum: 20, default: 3 })
  }, { additionalProperties: false, default: {} }),
  commands: Type.Object({
    // A number: tests and drills may set a fraction of a minute.
    confirmMinutes: Type.Number({ minimum: 0.001, maximum: 1440, default: 15 }),
    perHour: Type.Integer({ minimum: 1, maximum: 1000, default: 10 }),
    codeAttempts: Type.Integer({ minimum: 1, maximum: 20, default: 5 })
  }, { additionalProperties: false, default: {} }),
  schedules: Type.Object({
    // Runs that fell due while the appliance was down are sent if at most this late, else missed.
    catchUpMinutes: Type.Integer({ minimum: 0, maximum: 1440, default: 60 })
  }, { additionalProperties: false, default: {} }),
  stepMail: Type.Object({
    hour: Type.Integer({ minimum: 0, maximum: 23, default: 10 }),
    graceDays: Type.Integer({ minimum: 0, maximum: 31, default: 3 })
  }, { additionalProperties: false, default: {} }),
  routes: Type.Array(RouteSchema, { default: [] }),
  defaultRoute: DefaultRouteSchema
}, { additionalProperties: false })

export type Config = Static<typeof ConfigSchema>
export type RouteConfig = Static<typeof RouteSchema>
export type DefaultRouteConfig = Static<typeof DefaultRouteSchema>

/** Reads a config file (YAML; JSON is YAML too) or nothing, applies the environment, checks it. */
export function loadConfig (options: {
  file?: string
  env?: NodeJS.ProcessEnv
  overrides?: Record<string, unknown>
} = {}): Config {
  let raw: Record<string, unknown> = {}
  let base = process.cwd()

  if (options.file !== undefined) {
    raw = readConfigFile(options.file)
    base = dirname(resolve(options.file))
  }

  applyEnv(raw, options.env ?? process.env)
  const merged = deepMerge(raw, options.overrides ?? {})
  const config = checkConfig(merged)
  config.dataDir = resolve(base, config.dataDir)
  if (config.keyFile !== undefined) config.keyFile = resolve(base, config.keyFile)
  if (config.dkim !== undefined) config.dkim.keyFile = resolve(base, config.dkim.keyFile)
  return config
}

function readConfigFile (file: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new MimamoriError('MIMAMORI_CONFIG_INVALID', `cannot read ${file}`, { cause: err })
  }

  const toml = file.endsWith('.toml')
  let parsed: unknown
  try {
    parsed = toml ? parseToml(text) : YAML.parse(text)
  } catch (err) {
    const format = toml ? 'TOML' : 'YAML'
    throw new MimamoriError('MIMAMORI_CONFIG_INVALID', `${file} is not valid ${format}: ${(err as Error).message}`)
  }

  if (parsed === null || parsed === undefined) return {}
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new MimamoriError('MIMAMORI_CONFIG_INVALID', `${file} must hold a mapping of settings`)
  }
  return withoutEmptySections(parsed as Record<string, unknown>)
}

// A section whose every line is commented out (`sender:` above only comments, as in the example
// file) reads as null in YAML: it means "the defaults", not a wrong type.
function withoutEmptySections (raw: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(raw).filter(([, value]) => value !== null))
}

/** Checks a plain object against the schema, fills defaults, and explains every problem. */
export function checkConfig (input: unknown): Config {
  const withDefaults = Value.Default(ConfigSchema, Value.Clone(input))
  const problems = [...Value.Errors(ConfigSchema, withDefaults)]
  if (problems.length > 0) {
    const lines = problems.slice(0, 20).map((p) => `  ${p.path || '/'}: ${p.message}`)
    throw new MimamoriError('MIMAMORI_CONFIG_INVALID',
      `the configuration is invalid:\n${lines.join('\n')}`, { details: problems.map((p) => p.path) })
  }

  const config = withDefaults as Config
  checkRoutes(config)
  checkSender(config)
  checkTimeZone(config.timeZone)
  checkAlertRules(config)
  return config
}

function checkAlertRules (config: Config): void {
  const ids = new Set<string>()
  for (const rule of config.feeds.rules) {
    if (ids.has(rule.id)) throw new MimamoriError('MIMAMORI_CONFIG_INVALID', `feeds.rules: id "${rule.id}" is used twice`)
    ids.add(rule.id)
    if (levelOf(rule.kind, rule.minLevel) === undefined) {
      const known = Object.keys(LEVELS[rule.kind]).join(', ')
      throw new MimamoriError('MIMAMORI_CONFIG_INVALID',
        `feeds.rules ${rule.id}: minLevel "${rule.minLevel}" is not a level of ${rule.kind} (${known})`)
    }
  }
}

function checkSender (config: Config): void {
  if (config.sender.address === undefined) return
  try {
    parseAddress(config.sender.address)
  } catch (err) {
    const reason = err instanceof AddressError ? err.message : String(err)
    throw new MimamoriError('MIMAMORI_CONFIG_INVALID', `sender.address: ${reason}`)
  }
}

function checkTimeZone (timeZone: string): void {
  try {
    Intl.DateTimeFormat('en', { timeZone })
  } catch {
    throw new MimamoriError('MIMAMORI_CONFIG_INVALID', `timeZone: "${timeZone}" is not a known time zone`)
  }
}

function checkRoutes (config: Config): void {
  const names = new Set<string>([config.defaultRoute.name])
  for (const route of config.routes) {
    if (names.has(route.name)) {
      throw new MimamoriError('MIMAMORI_CONFIG_INVALID', `route name "${route.name}" is used twice`)
    }
    names.add(route.name)
  }
  if (config.defaultRoute.mode === 'smarthost' && config.defaultRoute.host === undefined) {
    throw new MimamoriError('MIMAMORI_CONFIG_INVALID', 'defaultRoute: mode smarthost needs a host')
  }
  for (const server of config.defaultRoute.dnsServers ?? []) checkDnsServer(server)
}

// The forms node:dns accepts: 192.0.2.1, 192.0.2.1:5353, 2001:db8::1, [2001:db8::1]:5353. A name
// is refused: looking up the name server would need a name server.
function checkDnsServer (server: string): void {
  const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/.exec(server)
  const withPort = /^([^:]+):(\d{1,5})$/.exec(server)
  const [host, port] = bracketed !== null
    ? [bracketed[1] as string, Number(bracketed[2])]
    : withPort !== null ? [withPort[1] as string, Number(withPort[2])] : [server, 53]
  const family = isIP(host)
  const ok = family !== 0 && port >= 1 && port <= 65535 && (bracketed === null || family === 6)
  if (!ok) {
    throw new MimamoriError('MIMAMORI_CONFIG_INVALID',
      `defaultRoute.dnsServers: "${server}" is not an IP address with an optional port`)
  }
}

/** MIMAMORI_ variables that are not settings: they name the file or serve the commands. */
export const NON_SETTING_VARIABLES = new Set([
  'MIMAMORI_CONFIG', 'MIMAMORI_API_TOKEN', 'MIMAMORI_SIMULATORS', 'MIMAMORI_BENCH_MEMORY'
])

// MIMAMORI_HTTP__PORT=9000 sets http.port; a segment matches a key ignoring case and underscores,
// so MIMAMORI_PUBLIC_BASE_URL sets publicBaseUrl. Arrays and objects take JSON.
function applyEnv (target: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('MIMAMORI_') || value === undefined || NON_SETTING_VARIABLES.has(name)) continue
    const segments = name.slice('MIMAMORI_'.length).split('__')
    const path = schemaPath(segments)
    if (path === undefined) {
      throw new MimamoriError('MIMAMORI_CONFIG_INVALID', `${name} names no setting`)
    }
    setPath(target, path.keys, convert(path.schema, value, name))
  }
}

function schemaPath (segments: string[]): { keys: string[], schema: TSchema } | undefined {
  let schema: TSchema = ConfigSchema
  const keys: string[] = []
  for (const segment of segments) {
    const wanted = segment.replace(/_/g, '').toLowerCase()
    const properties = (schema as { properties?: Record<string, TSchema> }).properties
    if (properties === undefined) return undefined
    const key = Object.keys(properties).find((k) => k.toLowerCase() === wanted)
    if (key === undefined) return undefined
    keys.push(key)
    schema = properties[key] as TSchema
  }
  return { keys, schema }
}

function convert (schema: TSchema, value: string, name: string): unknown {
  const kind = schema[Kind] as string
  if (kind === 'Integer' || kind === 'Number') {
    if (value.trim() === '' || Number.isNaN(Number(value))) {
      throw new MimamoriError('MIMAMORI_CONFIG_INVALID', `${name} must be a number`)
    }
    return Number(value)
  }
  if (kind === 'Boolean') return value === 'true' || value === '1'
  if (kind === 'Array' || kind === 'Object') {
    try {
      return JSON.parse(value)
    } catch {
      throw new MimamoriError('MIMAMORI_CONFIG_INVALID', `${name} must be JSON`)
    }
  }
  return value
}

function setPath (target: Record<string, unknown>, keys: string[], value: unknown): void {
  let node = target
  for (const key of keys.slice(0, -1)) {
    const next = node[key]
    if (typeof next !== 'object' || next === null) node[key] = {}
    node = node[key] as Record<string, unknown>
  }
  node[keys[keys.length - 1] as string] = value
}

function deepMerge (a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a }
  for (const [key, value] of Object.entries(b)) {
    const current = out[key]
    const bothObjects = isPlainObject(current) && isPlainObject(value)
    out[key] = bothObjects ? deepMerge(current, value) : value
  }
  return out
}

function isPlainObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The envelope and header sender: the configured address or alert@<mailDomain>. */
export function senderAddress (config: Config): string {
  return config.sender.address ?? `alert@${config.mailDomain}`
}
