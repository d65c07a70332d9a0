// Runs in the appliance: the alert rules — which kind, level and area of a hazard event produce
// which alert to whom. The configuration seeds them; staff add, change and switch them off through
// the API, and those rules live in the store alone.

import type { Store } from '../store/store.js'
import type { Config } from '../config.js'
import { MimamoriError } from '../errors.js'
import { AREA_TABLE, levelOf, type HazardArea, type HazardEvent } from './hazard-event.js'
import type { AlertRuleConfig } from './feeds-config.js'

export interface AlertRule extends AlertRuleConfig {
  /** config: written from the configuration at every start; staff: made through the API */
  source: 'config' | 'staff'
  updatedAt: string
}

/** Writes the configuration's rules into the store; rules staff made are left as they are. */
export function seedRules (store: Store, config: Config): number {
  const now = new Date().toISOString()
  // checkConfig has checked each rule's level and id already
  for (const rule of config.feeds.rules) {
    store.alertRules.putSync(rule.id, { ...rule, source: 'config', updatedAt: now })
  }
  const configured = new Set(config.feeds.rules.map((r) => r.id))
  for (const { key, value } of store.alertRules.getRange()) {
    // a rule taken out of the configuration stops acting, but stays visible as switched off
    const rule = value as AlertRule
    if (rule.source === 'config' && !configured.has(String(key)) && rule.enabled) {
      store.alertRules.putSync(key, { ...rule, enabled: false, updatedAt: now })
    }
  }
  return configured.size
}

export function listRules (store: Store): AlertRule[] {
  return [...store.alertRules.getRange()].map((e) => e.value as AlertRule)
}

export function getRule (store: Store, id: string): AlertRule {
  const rule = store.alertRules.get(id) as AlertRule | undefined
  if (rule === undefined) throw new MimamoriError('MIMAMORI_NOT_FOUND', `no alert rule ${id}`)
  return rule
}

/** Stores a rule made or changed by staff. */
export function saveRule (store: Store, rule: AlertRuleConfig): AlertRule {
  checkRule(rule)
  const stored: AlertRule = { ...rule, source: 'staff', updatedAt: new Date().toISOString() }
  store.alertRules.putSync(rule.id, stored)
  return stored
}

export function deleteRule (store: Store, id: string): void {
  getRule(store, id)
  store.alertRules.removeSync(id)
}

/** A threshold word the kind does not know would make a rule that never acts: refuse it. */
export function checkRule (rule: AlertRuleConfig): void {
  if (levelOf(rule.kind, rule.minLevel) === undefined) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST',
      `alert rule ${rule.id}: "${rule.minLevel}" is not a level of ${rule.kind}`)
  }
}

/**
 * The areas of an event a rule acts on: in the rule's (or the watched) areas of the kind's code
 * table, at or above the rule's level, and newly in force. A warning that merely continues
 * (継続) is not alerted again; an upgrade comes as a new kind in force and is.
 */
export function matchingAreas (rule: AlertRule, event: HazardEvent, config: Config): HazardArea[] {
  if (!rule.enabled || rule.kind !== event.kind) return []
  const threshold = levelOf(rule.kind, rule.minLevel)
  if (threshold === undefined) return []
  const table = event.kind === 'other' ? 'cap' : AREA_TABLE[event.kind]
  const watched = new Set(rule.areas ?? config.feeds.areas[table])
  return event.areas.filter((a) =>
    a.table === table && watched.has(a.code) && a.level >= threshold && a.change === 'new')
}

/** Whether a rule acts on an event of this status: drills only in drill mode, tests never. */
export function actsOnStatus (rule: AlertRule, status: HazardEvent['status']): boolean {
  if (status === 'actual') return true
  if (status === 'drill') return rule.drill?.enabled === true
  return false
}
