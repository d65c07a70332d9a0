// Runs in the appliance and in the delivery workers: the key that protects every address at rest.
// Addresses are sealed with AES-256-GCM and found through a keyed hash (a blind index), so the
// store alone reveals no address; recipient tokens in links are signed with a third derived key.

import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { MimamoriError } from '../errors.js'

const KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16

export class AddressVault {
  readonly #sealKey: Buffer
  readonly #indexKey: Buffer
  readonly #tokenKey: Buffer

  constructor (readonly masterKey: Buffer) {
    if (masterKey.length !== KEY_BYTES) {
      throw new MimamoriError('MIMAMORI_KEY_UNREADABLE', `the key must be ${KEY_BYTES} bytes`)
    }
    this.#sealKey = derive(masterKey, 'address-seal')
    this.#indexKey = derive(masterKey, 'address-index')
    this.#tokenKey = derive(masterKey, 'recipient-token')
  }

  /** Seals a UTF-8 string: iv ‖ tag ‖ ciphertext. */
  seal (plain: string): Buffer {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.#sealKey, iv)
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()])
    return Buffer.concat([iv, cipher.getAuthTag(), body])
  }

  open (sealed: Uint8Array): string {
    const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength)
    const decipher = createDecipheriv('aes-256-gcm', this.#sealKey, buf.subarray(0, IV_BYTES))
    decipher.setAuthTag(buf.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
    return Buffer.concat([decipher.update(buf.subarray(IV_BYTES + TAG_BYTES)), decipher.final()])
      .toString('utf8')
  }

  /** The blind index of a look-up key (see address.ts lookupKey). */
  index (lookup: string): string {
    return createHmac('sha256', this.#indexKey).update(lookup).digest('base64url').slice(0, 27)
  }

  /** A MAC for recipient tokens, truncated: links must stay short on a phone. */
  tokenMac (data: Buffer): Buffer {
    return createHmac('sha256', this.#tokenKey).update(data).digest().subarray(0, 12)
  }

  /** Stored beside the data so that a wrong key is caught before anything is read or written. */
  keyCheck (): string {
    return createHmac('sha256', this.#indexKey).update('mimamori key check').digest('base64url')
  }
}

function derive (master: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', master, 'mimamori', info, KEY_BYTES))
}

/** Reads the key file (base64 of 32 bytes); MIMAMORI_KEY_MISSING when absent. */
export function readKeyFile (file: string): Buffer {
  if (!existsSync(file)) {
    throw new MimamoriError('MIMAMORI_KEY_MISSING', `the key file ${file} does not exist`)
  }

  let key: Buffer
  try {
    key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64')
  } catch (err) {
    throw new MimamoriError('MIMAMORI_KEY_UNREADABLE', `cannot read the key file ${file}`, { cause: err })
  }
  if (key.length !== KEY_BYTES) {
    throw new MimamoriError('MIMAMORI_KEY_UNREADABLE',
      `the key file ${file} does not hold a ${KEY_BYTES}-byte base64 key`)
  }
  return key
}

/** Creates a new random key file readable by its owner only. */
export function createKeyFile (file: string): Buffer {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  const key = randomBytes(KEY_BYTES)
  writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' })
  return key
}
