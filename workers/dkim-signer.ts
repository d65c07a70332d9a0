// Runs in the delivery worker threads: DKIM-signs each built message (RFC 6376, relaxed/relaxed;
// RFC 8463 for ed25519) with a key parsed once, not once per message as nodemailer does.

import { createHash, createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto'
import { MimamoriError } from '../appliance/errors.js'

export interface DkimOptions {
  domain: string
  selector: string
  /** PEM text or a private KeyObject; RSA (1024 bits or more) or ed25519. */
  privateKey: string | KeyObject
}

// The fields that say who sent what to whom, and how to leave; signed when present.
const SIGNED_HEADERS = [
  'from', 'to', 'subject', 'date', 'message-id', 'mime-version', 'content-type',
  'content-transfer-encoding', 'reply-to', 'list-unsubscribe', 'list-unsubscribe-post'
]
const DOMAIN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}$/
const SELECTOR = /^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9_-]+)*$/
const SIGNATURE_LINE = 72

function toKeyObject (privateKey: string | KeyObject): KeyObject {
  if (typeof privateKey !== 'string') return privateKey
  try {
    return createPrivateKey(privateKey)
  } catch (err) {
    const message = 'The DKIM private key cannot be read'
    throw new MimamoriError('MIMAMORI_DKIM_KEY_INVALID', message, { cause: err })
  }
}

function checkKey (key: KeyObject): 'rsa' | 'ed25519' {
  if (key.type !== 'private') {
    throw new MimamoriError('MIMAMORI_DKIM_KEY_INVALID', 'The DKIM key is not a private key')
  }
  const kind = key.asymmetricKeyType
  if (kind === 'ed25519') return kind
  if (kind !== 'rsa') {
    throw new MimamoriError('MIMAMORI_DKIM_KEY_INVALID', `DKIM keys are RSA or ed25519: ${kind}`)
  }
  // Verifiers ignore signatures made with shorter RSA keys (RFC 8301).
  if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 1024) {
    throw new MimamoriError('MIMAMORI_DKIM_KEY_INVALID', 'The RSA DKIM key has under 1024 bits')
  }
  return kind
}

/** Relaxed header canonicalisation (RFC 6376 3.4.2) of one field, folds included. */
export function relaxedHeader (field: string): string {
  const colon = field.indexOf(':')
  const name = field.slice(0, colon).replace(/[ \t]+$/, '').toLowerCase()
  // Plain checks before each regex: this runs for a dozen fields of every message.
  let value = field.slice(colon + 1)
  if (value.includes('\r\n')) value = value.replaceAll('\r\n', '')
  if (value.includes('\t') || value.includes('  ')) value = value.replace(/[ \t]+/g, ' ')
  const start = value.startsWith(' ') ? 1 : 0
  const end = value.endsWith(' ') ? value.length - 1 : value.length
  return `${name}:${value.slice(start, end)}`
}

/** Relaxed body canonicalisation (RFC 6376 3.4.4) of a CRLF body. */
export function relaxedBody (body: Buffer): Buffer {
  // A base64 body has no spaces to squeeze: trim the trailing empty lines and stop there.
  const plain = body.indexOf(0x20) === -1 && body.indexOf(0x09) === -1
  const text = plain ? body : Buffer.from(squeezeSpaces(body.toString('latin1')), 'latin1')
  let end = text.length
  while (end >= 2 && text[end - 2] === 0x0d && text[end - 1] === 0x0a) end -= 2
  if (end === 0) return Buffer.alloc(0)
  return Buffer.concat([text.subarray(0, end), Buffer.from('\r\n')])
}

function squeezeSpaces (body: string): string {
  return body.replace(/[ \t]+/g, ' ').replace(/ (?=\r\n|$)/g, '')
}

/** The header fields as written (folds kept), without their final CRLF. */
function splitFields (headerBlock: string): string[] {
  if (headerBlock === '') return []
  return headerBlock.split(/\r\n(?![ \t])/)
}

/** Picks the fields to sign, the last of each name as RFC 6376 5.4.2 says, in h= order. */
function pickFields (fields: string[]): { names: string[], canonical: string } {
  const byName = new Map<string, string>()
  for (const field of fields) {
    const name = field.slice(0, field.indexOf(':')).trim().toLowerCase()
    if (SIGNED_HEADERS.includes(name)) byName.set(name, field)
  }

  const names = SIGNED_HEADERS.filter((name) => byName.has(name))
  const canonical = names.map((name) => relaxedHeader(byName.get(name) ?? '') + '\r\n').join('')
  return { names, canonical }
}

/** A message with bare LF line ends is signed as it will travel: with CRLF. */
function withCrlf (raw: Buffer): Buffer {
  for (let at = raw.indexOf(0x0a); at !== -1; at = raw.indexOf(0x0a, at + 1)) {
    if (at === 0 || raw[at - 1] !== 0x0d) {
      return Buffer.from(raw.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1')
    }
  }
  return raw
}

/** Where the header block ends and the body begins (after the empty line). */
function locateBody (message: Buffer): { headerEnd: number, bodyStart: number } {
  if (message[0] === 0x0d && message[1] === 0x0a) return { headerEnd: 0, bodyStart: 2 }
  const split = message.indexOf('\r\n\r\n')
  if (split === -1) return { headerEnd: message.length, bodyStart: message.length }
  return { headerEnd: split, bodyStart: split + 4 }
}

function foldSignature (signature: string): string {
  let out = ''
  for (let i = 0; i < signature.length; i += SIGNATURE_LINE) {
    out += (i === 0 ? '' : '\r\n\t') + signature.slice(i, i + SIGNATURE_LINE)
  }
  return out
}

export class DkimSigner {
  readonly #key: KeyObject
  readonly #algorithm: 'rsa-sha256' | 'ed25519-sha256'
  readonly #domain: string
  readonly #selector: string

  constructor (options: DkimOptions) {
    if (!DOMAIN.test(options.domain) || !SELECTOR.test(options.selector)) {
      throw new MimamoriError('MIMAMORI_DKIM_KEY_INVALID', 'The DKIM domain or selector is bad')
    }
    this.#key = toKeyObject(options.privateKey)
    this.#algorithm = checkKey(this.#key) === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256'
    this.#domain = options.domain.toLowerCase()
    this.#selector = options.selector
  }

  /** Returns the message with a DKIM-Signature header in front of it. */
  sign (raw: Buffer): Buffer {
    const bytes = withCrlf(raw)
    const { headerEnd, bodyStart } = locateBody(bytes)

    const body = relaxedBody(bytes.subarray(bodyStart))
    const bodyHash = createHash('sha256').update(body).digest('base64')
    const { names, canonical } = pickFields(splitFields(bytes.toString('latin1', 0, headerEnd)))

    // b= comes last so that verifiers, which blank its value, hash exactly this text.
    const unsigned = `DKIM-Signature: v=1; a=${this.#algorithm}; c=relaxed/relaxed;\r\n` +
      `\td=${this.#domain}; s=${this.#selector}; t=${Math.floor(Date.now() / 1000)};\r\n` +
      `\th=${names.join(':')};\r\n` +
      `\tbh=${bodyHash};\r\n` +
      '\tb='
    const signature = this.#signData(Buffer.from(canonical + relaxedHeader(unsigned), 'latin1'))

    const header = Buffer.from(`${unsigned}${foldSignature(signature)}\r\n`, 'latin1')
    return Buffer.concat([header, bytes])
  }

  #signData (data: Buffer): string {
    if (this.#algorithm === 'rsa-sha256') {
      return cryptoSign('sha256', data, this.#key).toString('base64')
    }
    // RFC 8463: ed25519-sha256 signs the SHA-256 digest of the header data, not the data itself.
    const digest = createHash('sha256').update(data).digest()
    return cryptoSign(null, digest, this.#key).toString('base64')
  }
}
