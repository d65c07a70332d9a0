// Runs in the appliance's main thread: the HTTP face of the appliance (Fastify). Plugins load in
// a fixed order — error handling, then the API, the public pages, health and metrics. No
// business rule lives here: routes check input and call the appliance.

import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyError } from 'fastify'
import type { Appliance } from '../appliance/appliance.js'
import { MimamoriError } from '../appliance/errors.js'
import { apiRoutes } from './api/api-routes.js'
import { publicPages } from './public-pages.js'
import { signupPages } from './signup-pages.js'
import { capPages } from './cap-pages.js'
import { healthRoutes } from './health-routes.js'

export async function buildServer (appliance: Appliance): Promise<FastifyInstance> {
  const app = Fastify({
    // One root logger: the appliance's, with its redaction and level (and a test's capture).
    loggerInstance: appliance.log.child({ component: 'http' },
      { serializers: { req: requestForLog } }) as FastifyBaseLogger,
    // Fastify's default drops unknown properties silently; the API refuses them instead.
    ajv: { customOptions: { removeAdditional: false } },
    bodyLimit: 25 * 1024 * 1024,
    trustProxy: true
  })

  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler((request, reply) => {
    // routeOptions.url is unset when no route matched; the path is what the caller needs to see.
    const path = request.url.split('?')[0] ?? ''
    void reply.code(404).send({ error: { code: 'MIMAMORI_NOT_FOUND', message: `no route ${request.method} ${path}` } })
  })

  await app.register(apiRoutes(appliance), { prefix: '/api/v1' })
  await app.register(publicPages(appliance))
  await app.register(signupPages(appliance))
  await app.register(capPages(appliance))
  await app.register(healthRoutes(appliance))
  return app
}

// Recipient tokens travel in public page URLs; they are capabilities, so the log keeps none.
function requestForLog (req: { method: string, url: string, id: string }): Record<string, string> {
  return { id: req.id, method: req.method, url: req.url.replace(/[A-Za-z0-9_-]{20,}/g, '[token]') }
}

/** Every error becomes JSON with a stable code; 5xx details stay in the log. */
function errorHandler (this: FastifyInstance, error: FastifyError | MimamoriError, request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply): void {
  if (error instanceof MimamoriError) {
    if (error.statusCode >= 500) request.log.error({ err: error }, 'request failed')
    const body: Record<string, unknown> = { code: error.code, message: error.message }
    if (error.details !== undefined && error.statusCode < 500) body.details = error.details
    void reply.code(error.statusCode).send({ error: body })
    return
  }

  const status = error.statusCode ?? 500
  if (error.validation !== undefined) {
    void reply.code(400).send({ error: { code: 'MIMAMORI_BAD_REQUEST', message: error.message } })
    return
  }
  if (status >= 500) {
    request.log.error({ err: error }, 'request failed')
    void reply.code(500).send({ error: { code: 'MIMAMORI_INTERNAL', message: 'Internal error' } })
    return
  }
  void reply.code(status).send({ error: { code: 'MIMAMORI_BAD_REQUEST', message: error.message } })
}
