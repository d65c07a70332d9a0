// Runs in the appliance: reads a JMA Atom feed (extra.xml, eqvol.xml and their long versions)
// into its entries. Both the current format and the pre-2021 one (urn:uuid ids, http:// links,
// data/<uuid>.xml) are read the same way: ids and links are kept exactly as given.

import { MimamoriError } from '../errors.js'
import { readXml, all, textAt, type XmlElement } from './xml-document.js'

export interface AtomEntry {
  id: string
  /** the telegram's Control/Title: 気象警報・注意報（Ｈ２７）, 震源・震度に関する情報 … */
  title: string
  updated: string
  /** where the telegram is fetched from */
  link: string
  /** the issuing office */
  author: string
  /** the headline */
  content: string
}

export interface AtomFeed {
  updated: string
  entries: AtomEntry[]
}

/** Reads a feed; throws MIMAMORI_XML_REFUSED for an unsafe document or one that is no Atom feed. */
export function readAtomFeed (bytes: Buffer | string, maxBytes?: number): AtomFeed {
  const feed = readXml(bytes, maxBytes)
  if (feed.name !== 'feed') {
    throw new MimamoriError('MIMAMORI_XML_REFUSED',
      `the root element is ${feed.name}, not an Atom feed`)
  }
  return { updated: textAt(feed, 'updated'), entries: all(feed, 'entry').map(entryOf) }
}

function entryOf (entry: XmlElement): AtomEntry {
  return {
    id: textAt(entry, 'id'),
    title: textAt(entry, 'title'),
    updated: textAt(entry, 'updated'),
    link: linkOf(entry),
    author: textAt(entry, 'author', 'name'),
    content: textAt(entry, 'content')
  }
}

// JMA gives each entry one link without rel; Atom's default rel is "alternate"
function linkOf (entry: XmlElement): string {
  const links = all(entry, 'link')
  const alternate = links.find((l) => (l.attributes.rel ?? 'alternate') === 'alternate')
  return (alternate ?? links[0])?.attributes.href ?? ''
}
