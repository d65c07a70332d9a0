// Runs in the appliance: the signed per-recipient token carried by every message's links, its
// Reply-To and its return path. It names one ledger row (broadcast, seq) and cannot be forged.

import { timingSafeEqual } from 'node:crypto'
import type { AddressVault } from './store/address-vault.js'

export interface RecipientRef { broadcastId: number, seq: number }

/** 20 bytes → 27 URL-safe characters: short enough for a phone's link and a local part. */
export function makeToken (vault: AddressVault, ref: RecipientRef): string {
  const data = Buffer.alloc(8)
  data.writeUInt32BE(ref.broadcastId, 0)
  data.writeUInt32BE(ref.seq, 4)
  return Buffer.concat([data, vault.tokenMac(data)]).toString('base64url')
}

/** The row a token names, or undefined for anything forged, truncated or malformed. */
export function readToken (vault: AddressVault, token: string): RecipientRef | undefined {
  if (!/^[A-Za-z0-9_-]{27}$/.test(token)) return undefined
  const raw = Buffer.from(token, 'base64url')
  // The last character carries two unused bits; only the one spelling makeToken gives is valid,
  // else four spellings of each token would open the same row.
  if (raw.length !== 20 || raw.toString('base64url') !== token) return undefined
  const data = raw.subarray(0, 8)
  if (!timingSafeEqual(raw.subarray(8), vault.tokenMac(data))) return undefined
  return { broadcastId: data.readUInt32BE(0), seq: data.readUInt32BE(4) }
}
