// Runs in the appliance's main thread: our alerts as CAP for other systems to relay — the Atom
// feed /cap/alerts.atom and one CAP 1.2 document per alert, /cap/alerts/<broadcast id>.xml. No
// token: like an archive of what went out, they hold no recipient and nothing personal.

import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import type { Appliance } from '../appliance/appliance.js'
import { MimamoriError } from '../appliance/errors.js'
import { capAlertDocument, capAtomFeed, capBroadcast } from '../appliance/feeds/cap-output.js'

const DOCUMENT = /^([1-9][0-9]{0,14})\.xml$/

export function capPages (appliance: Appliance): FastifyPluginAsync {
  return async (app) => {
    app.get('/cap/alerts.atom', async (_request, reply) => {
      return await send(reply, 'application/atom+xml', capAtomFeed(appliance))
    })

    app.get<{ Params: { file: string } }>('/cap/alerts/:file', async (request, reply) => {
      const match = DOCUMENT.exec(request.params.file)
      if (match === null) throw new MimamoriError('MIMAMORI_NOT_FOUND', 'no such CAP alert')
      const broadcast = capBroadcast(appliance, Number(match[1]))
      return await send(reply, 'application/cap+xml', capAlertDocument(appliance, broadcast))
    })
  }
}

// Relays poll the feed every minute or so; a short public cache spares the appliance.
async function send (reply: FastifyReply, type: string, xml: string): Promise<FastifyReply> {
  return await reply
    .header('content-type', `${type}; charset=UTF-8`)
    .header('cache-control', 'public, max-age=60')
    .header('x-content-type-options', 'nosniff')
    .send(xml)
}
