// Runs in the appliance: reads the XML that disaster feeds bring (JMA telegrams and Atom feeds,
// CAP alerts) into a plain tree, refusing what an attacker would send instead.
//
// JMA and CAP documents never carry a DTD, so any DOCTYPE or ENTITY declaration is refused before
// parsing: no external entity is ever fetched and no entity is ever expanded (the xee.cap and
// billion-laughs kind of attack). The bytes are decoded by the encoding their prolog declares
// (CAP feeds from abroad use ISO-8859-1), and a document over the size limit is not read.

import { XMLParser } from 'fast-xml-parser'
import iconv from 'iconv-lite'
import { MimamoriError } from '../errors.js'

/** An element: its attributes, its text, and its child elements by local name (always lists). */
export interface XmlElement {
  name: string
  attributes: Record<string, string>
  text: string
  children: Map<string, XmlElement[]>
}

export const MAX_XML_BYTES = 4 * 1024 * 1024

const DECLARATION = /<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)/i
const PROLOG_ENCODING = /^<\?xml[^>]*\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']/

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  removeNSPrefix: true,
  alwaysCreateTextNode: true,
  textNodeName: '#text',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  // the five XML entities and numeric references; with no DTD allowed, nothing else expands
  processEntities: true,
  htmlEntities: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  preserveOrder: true
})

/** Parses a document; throws MIMAMORI_XML_REFUSED for anything unsafe or not well formed. */
export function readXml (input: Buffer | string, maxBytes = MAX_XML_BYTES): XmlElement {
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.length
  if (size > maxBytes) refuse(`the document is larger than ${maxBytes} bytes`)
  const text = typeof input === 'string' ? input : decode(input)
  if (DECLARATION.test(text)) refuse('the document declares a DTD or entities, which feeds never do')
  if (!/<[A-Za-z_]/.test(text)) refuse('the document has no root element')

  let nodes: unknown[]
  try {
    nodes = parser.parse(text, true) as unknown[]
  } catch (err) {
    refuse(`the document is not well-formed XML: ${(err as Error).message}`.slice(0, 300))
  }
  const root = nodes.map(toElement).find((e) => e !== undefined)
  if (root === undefined) refuse('the document has no root element')
  return root
}

function decode (bytes: Buffer): string {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return bytes.subarray(3).toString('utf8')
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return iconv.decode(bytes.subarray(2), 'utf-16le')
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return iconv.decode(bytes.subarray(2), 'utf-16be')
  const label = PROLOG_ENCODING.exec(bytes.subarray(0, 200).toString('latin1'))?.[1] ?? 'utf-8'
  if (!iconv.encodingExists(label)) refuse(`the document's encoding ${label} is not known`)
  return iconv.decode(bytes, label)
}

// fast-xml-parser's ordered output: [{ tag: [children…], ':@': { attr: value } }, { '#text': … }]
function toElement (node: unknown): XmlElement | undefined {
  if (node === null || typeof node !== 'object') return undefined
  const entries = Object.entries(node as Record<string, unknown>).filter(([k]) => k !== ':@' && k !== '#text')
  const [name, content] = entries[0] ?? []
  if (name === undefined || name.startsWith('?')) return undefined

  const element: XmlElement = { name, attributes: attributesOf(node), text: '', children: new Map() }
  const texts: string[] = []
  for (const child of Array.isArray(content) ? content : []) {
    const t = (child as Record<string, unknown>)['#text']
    if (t !== undefined) texts.push(String(t))
    const sub = toElement(child)
    if (sub === undefined) continue
    const list = element.children.get(sub.name)
    if (list === undefined) element.children.set(sub.name, [sub])
    else list.push(sub)
  }
  element.text = texts.join('')
  return element
}

function attributesOf (node: object): Record<string, string> {
  const group = (node as Record<string, Record<string, unknown> | undefined>)[':@']
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(group ?? {})) out[k] = String(v)
  return out
}

function refuse (reason: string): never {
  throw new MimamoriError('MIMAMORI_XML_REFUSED', reason)
}

// ---- reading the tree ------------------------------------------------------------------

/** The child elements with this local name (none: an empty list). */
export function all (element: XmlElement | undefined, name: string): XmlElement[] {
  return element?.children.get(name) ?? []
}

/** The first child with this local name, following a path of names. */
export function first (element: XmlElement | undefined, ...path: string[]): XmlElement | undefined {
  let at = element
  for (const name of path) at = all(at, name)[0]
  return at
}

/** The text of the first element at the path, or '' when there is none. */
export function textAt (element: XmlElement | undefined, ...path: string[]): string {
  return first(element, ...path)?.text ?? ''
}
