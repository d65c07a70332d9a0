// Test helper: the CAP fixtures, and an Atom feed whose entries only link their alerts, as a
// publisher that does not embed them lists them.

import { readFileSync } from 'node:fs'

export const capFixture = (name: string): string =>
  readFileSync(new URL(`../../fixtures/cap/${name}`, import.meta.url), 'utf8')

/** An entry: its id, when it was last updated, and the URL of its alert. */
export type LinkedEntry = [id: string, updated: string, href: string]

/** A feed of linked alerts, the newest first as feeds list them. */
export function capLinkFeed (entries: LinkedEntry[]): string {
  const items = entries.map(([id, updated, href]) =>
    `<entry><id>${id}</id><updated>${updated}</updated><title>${id}</title>` +
    `<link rel="alternate" type="application/cap+xml" href="${href}"/></entry>`)
  return '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">' +
    `<id>urn:test:cap</id><title>松山市消防局</title><updated>${entries[0]?.[1] ?? ''}</updated>` +
    `${items.join('')}</feed>`
}
