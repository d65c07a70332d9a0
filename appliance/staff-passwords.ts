// Runs in the appliance and the CLI: the hashing of staff passwords and PINs (scrypt, a random
// salt each, constant-time comparison) and the random secrets handed to staff.

import { randomBytes, randomInt, scrypt, timingSafeEqual } from 'node:crypto'

// No 0/o, 1/l/i: a secret is typed into a phone's address field from a printed sheet.
export const SECRET_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'

// scrypt cost: 2^15 × r 8 is 32 MiB and about 50 ms a hash — slow for a guesser, bearable for a
// login. maxmem must exceed 128·N·r, which Node's 32 MiB default does not.
const SCRYPT = { ln: 15, r: 8, p: 1, keyLength: 32 }
const SCRYPT_MAXMEM = 64 * 1024 * 1024

/** A random string from an alphabet, without modulo bias (randomInt rejects and redraws). */
export function randomText (length: number, alphabet = SECRET_ALPHABET): string {
  let out = ''
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)]
  return out
}

async function scryptHash (secret: string, salt: Buffer, ln: number, r: number, p: number): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    scrypt(secret.normalize('NFKC'), salt, SCRYPT.keyLength, { N: 2 ** ln, r, p, maxmem: SCRYPT_MAXMEM },
      (err, key) => { if (err === null) resolve(key); else reject(err) })
  })
}

export async function hashPassword (password: string): Promise<string> {
  const salt = randomBytes(16)
  const key = await scryptHash(password, salt, SCRYPT.ln, SCRYPT.r, SCRYPT.p)
  const params = `ln=${SCRYPT.ln},r=${SCRYPT.r},p=${SCRYPT.p}`
  return `$scrypt$${params}$${salt.toString('base64url')}$${key.toString('base64url')}`
}

/** Checks a password against a stored hash in constant time; false for any malformed hash. */
export async function verifyPassword (stored: string, password: string): Promise<boolean> {
  const match = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([\w-]+)\$([\w-]+)$/.exec(stored)
  if (match === null) return false
  const [ln, r, p] = [Number(match[1]), Number(match[2]), Number(match[3])]
  // A stored cost beyond what we would ever set is refused, not run: it could stall the process.
  if (ln > 20 || r > 16 || p > 4 || 128 * 2 ** ln * r >= SCRYPT_MAXMEM) return false
  const expected = Buffer.from(match[5] as string, 'base64url')
  const key = await scryptHash(password, Buffer.from(match[4] as string, 'base64url'), ln, r, p)
    .catch(() => undefined)
  return key !== undefined && key.length === expected.length && timingSafeEqual(key, expected)
}
