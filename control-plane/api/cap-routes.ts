// Runs in the appliance's main thread: POST /api/v1/cap — another system (the fire department,
// a prefecture's alerting hub) posts one CAP alert; it is read like a feed's alert and handed to
// the hazard desk, where the alert rules of kind `other` decide what it becomes.

import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Appliance } from '../../appliance/appliance.js'
import { MimamoriError } from '../../appliance/errors.js'
import { readCapAlert } from '../../appliance/feeds/cap-alert.js'
import type { HazardEvent } from '../../appliance/feeds/hazard-event.js'
import { requireScope } from './api-routes.js'

export const CAP_CONTENT_TYPES = ['application/cap+xml', 'application/xml', 'text/xml']
const MAX_CAP_BYTES = 1024 * 1024

export function capRoutes (app: FastifyInstance, appliance: Appliance): void {
  // A scope of its own: only XML is parsed here, so JSON and other bodies answer 415
  void app.register(async (cap) => {
    cap.removeAllContentTypeParsers()
    cap.addContentTypeParser(CAP_CONTENT_TYPES, { parseAs: 'buffer', bodyLimit: MAX_CAP_BYTES },
      (_req, body, done) => { done(null, body) })

    cap.post('/cap', async (request, reply) => {
      const token = requireScope(request, 'feeds:write')
      const event = readCapAlert(bodyOf(request), MAX_CAP_BYTES)
      const result = appliance.hazards.ingest(event)
      appliance.log.info({
        component: 'cap', by: `token:${token.name}`, ...alertForLog(event),
        duplicate: result.duplicate, drafts: result.drafts.length,
        withdrawn: result.withdrawn.length
      }, 'CAP alert taken in')
      void reply.code(202)
      return {
        event: { id: event.id, kind: event.kind, status: event.status, infoType: event.infoType },
        ...result
      }
    })
  })
}

function bodyOf (request: FastifyRequest): Buffer {
  if (!Buffer.isBuffer(request.body) || request.body.length === 0) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST',
      'send the CAP alert as the body, as application/cap+xml')
  }
  return request.body
}

// The alert's words may name people (an Amber alert names the child): only its keys are logged,
// and of the sender address only the domain.
function alertForLog (event: HazardEvent): Record<string, unknown> {
  const [sender = '', identifier = ''] = event.id.split(',')
  const domain = sender.includes('@') ? sender.slice(sender.lastIndexOf('@') + 1) : sender
  return {
    identifier: identifier.slice(0, 100),
    senderDomain: domain.slice(0, 100),
    status: event.status,
    infoType: event.infoType,
    areas: event.areas.length
  }
}
