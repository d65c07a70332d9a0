// Runs in the appliance, under inbound mail decoding: turns the bytes of Japanese mail into text.
// Phones and old mail programs label ISO-2022-JP that holds NEC and IBM extension characters
// (CP50220: ①, ㈱, ㍉), Shift_JIS under a dozen names, and sometimes nothing at all; a
// plain ISO-2022-JP or Shift_JIS table loses those characters, so every Japanese label is read
// as the Microsoft superset, and an unlabelled or mislabelled body is recognised from its bytes.

import iconv from 'iconv-lite'
import Encoding from 'encoding-japanese'
import libmime from 'libmime'

/** The label the inbound pre-pass puts on text parts that carried none (or only US-ASCII). */
export const UNLABELLED = 'x-mimamori-unlabelled'

// Every name mail programs use for ISO-2022-JP and its Microsoft variants.
const ISO_2022_JP = /^(?:iso-?2022-?jp(?:-[123]|-ext)?|csiso2022jp2?|(?:x-)?cp5022[012]|(?:x-)?jis7?|x-windows-5022[01])$/
// Shift_JIS, Windows-31J and their aliases: all read as CP932, its superset.
const SHIFT_JIS = /^(?:shift[-_]?jis(?:x0213)?|x-shift[-_]jis|s-?jis|x-sjis|ms[-_]?kanji|csshiftjis|cswindows31j|windows-31j|(?:x-ms-|windows-|ms|ibm-?)?cp932|ms932|windows-932|932)$/
const EUC_JP = /^(?:euc-?jp|x-euc-?jp|cseucpkdfmtjapanese|(?:x-)?cp51932|eucjp-?ms|eucjp-?win)$/
const UTF_8 = /^(?:utf-?8|unicode-1-1-utf-8|us-ascii|ascii|ansi_x3\.4-1968|7bit|8bit)$/
// Names that are transfer encodings or a way to smuggle markup (UTF-7), never read as charsets.
const REFUSED = /^(?:(?:x-)?utf-?7(?:-imap)?|unicode-1-1-utf-7|csunicode11utf7|base64|hex|binary)$/

const ESCAPE_SEQUENCE = /\x1b(?:\$[@B]|\$\(D|\([BIJ])/

/** Decodes bytes written in the charset a label names; undefined or unknown labels are guessed. */
export function decodeText (bytes: Uint8Array, label?: string): string {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const name = (label ?? '').trim().replace(/^["']|["']$/g, '').toLowerCase()

  if (name === '' || name === UNLABELLED) return guessText(buffer)
  if (ISO_2022_JP.test(name)) return hasHighBytes(buffer) ? guessText(buffer) : decodeIso2022jp(buffer)
  if (SHIFT_JIS.test(name)) return decodeCp932(buffer)
  if (EUC_JP.test(name)) return EUC_JP_DECODER.decode(buffer)
  if (UTF_8.test(name)) return guessText(buffer, true)
  if (REFUSED.test(name)) return buffer.toString('utf8')
  if (iconv.encodingExists(name)) return iconv.decode(buffer, name)
  return guessText(buffer)
}

/**
 * Decodes a raw header value (one byte per character, as the MIME splitter keeps it): raw 8-bit
 * or ISO-2022-JP bytes that some phones put in headers, then RFC 2047 encoded words.
 */
export function decodeHeaderValue (binary: string): string {
  return decodeWords(headerText(binary))
}

/** A raw header value as text, its encoded words left for decodeWords (addresses parse first). */
export function headerText (binary: string): string {
  const bytes = Buffer.from(binary, 'latin1')
  return hasHighBytes(bytes) || ESCAPE_SEQUENCE.test(binary) ? guessText(bytes) : binary
}

/** RFC 2047 encoded words, adjacent ones joined first so a character split between them is whole. */
export function decodeWords (text: string): string {
  try {
    return headerWords.decodeWords(text)
  } catch {
    return text
  }
}

// libmime finds, joins and unpacks the encoded words; the bytes inside go through decodeText so
// that headers get the same charset handling as bodies. The 'binary' codec maps bytes one to one
// (libmime reads 'iso-8859-1' as Windows-1252), so the unpacked bytes come back unchanged.
class HeaderWords extends libmime.Libmime {
  override decodeWord (charset: string, encoding: string, text: string): string {
    const bytes = Buffer.from(super.decodeWord('binary', encoding, text), 'latin1')
    return decodeText(bytes, charset.split('*')[0])
  }
}
const headerWords = new HeaderWords()

/**
 * Reads bytes whose charset is unknown: ASCII with ISO-2022-JP escapes, else strict UTF-8, else
 * CP932 or EUC-JP, whichever reads with fewer broken characters (CP932 on a tie). A body
 * labelled UTF-8 keeps the UTF-8 reading unless a Japanese charset reads it without a flaw.
 */
function guessText (bytes: Buffer, labelledUtf8 = false): string {
  if (!hasHighBytes(bytes)) {
    const ascii = bytes.toString('latin1')
    return ESCAPE_SEQUENCE.test(ascii) ? decodeIso2022jp(bytes) : ascii
  }
  const utf8 = strictUtf8(bytes)
  if (utf8 !== undefined) return utf8

  const cp932 = decodeCp932(bytes)
  const eucjp = EUC_JP_DECODER.decode(bytes)
  const best = flaws(eucjp) < flaws(cp932) ? eucjp : cp932
  if (labelledUtf8 && flaws(best) > 0) return bytes.toString('utf8')
  return best
}

function strictUtf8 (bytes: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes)
  } catch {
    return undefined
  }
}

// The WHATWG Shift_JIS decoder is CP932: NEC and IBM extensions, and the user-defined area
// (where docomo and SoftBank put their pictograms) as private-use characters, which is also
// docomo's own Unicode mapping. iconv-lite's table stops short in that area.
const SHIFT_JIS_DECODER = new TextDecoder('shift_jis')
const EUC_JP_DECODER = new TextDecoder('euc-jp')

function decodeCp932 (bytes: Uint8Array): string {
  return SHIFT_JIS_DECODER.decode(bytes)
}

/**
 * ISO-2022-JP read as CP50220: encoding-japanese turns the escape-switched JIS rows into the
 * Shift_JIS rows they stand for (NEC row 13 and the IBM rows included), and CP932 reads those.
 * Each line starts afresh in ASCII, as RFC 1468 requires, so a missing reset at a line end
 * does not garble the lines after it.
 */
function decodeIso2022jp (bytes: Buffer): string {
  const lines: string[] = []
  let start = 0
  while (start <= bytes.length) {
    let end = bytes.indexOf(0x0a, start)
    if (end === -1) end = bytes.length
    // the CR of a CRLF stays out too: after a missing reset it would pair into a junk character
    const cr = end > start && bytes[end - 1] === 0x0d
    const line = bytes.subarray(start, cr ? end - 1 : end)
    const sjis = Encoding.convert(Array.from(line), { from: 'JIS', to: 'SJIS' }) as number[]
    lines.push(decodeCp932(Buffer.from(sjis)) + (cr ? '\r' : ''))
    start = end + 1
  }
  return lines.join('\n')
}

function hasHighBytes (bytes: Uint8Array): boolean {
  for (const byte of bytes) if (byte >= 0x80) return true
  return false
}

/** Characters a decoder could not read: replacement characters and stray C1 controls. */
function flaws (text: string): number {
  let count = 0
  for (const char of text) if (char === '\ufffd' || /[\x80-\x9f]/.test(char)) count++
  return count
}
