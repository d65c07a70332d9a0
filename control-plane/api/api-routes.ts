// Runs in the appliance's main thread: the JSON API under /api/v1 for other systems and scripts.
// Every route checks a bearer token's scope and organisation, validates its input with a schema,
// and calls the appliance.

import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { Appliance } from '../../appliance/appliance.js'
import { findToken, hasScope, type ApiToken, type Scope } from '../../appliance/api-tokens.js'
import { MimamoriError } from '../../appliance/errors.js'
import type { Broadcast } from '../../appliance/broadcasts.js'
import { domainFilteredMembers, organisationReplies } from '../../appliance/organisation-attention.js'
import { alertRoutes } from './alert-routes.js'
import { capRoutes } from './cap-routes.js'
import { scheduleRoutes } from './schedule-routes.js'

export const Targets = Type.Object({
  groups: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 500 })),
  groupPaths: Type.Optional(Type.Array(Type.String({ maxLength: 300 }), { maxItems: 500 })),
  organisations: Type.Optional(Type.Array(Type.String({ maxLength: 40 }), { maxItems: 500 })),
  topics: Type.Optional(Type.Array(Type.String({ maxLength: 40 }), { maxItems: 50 })),
  subscribers: Type.Optional(Type.Array(Type.Integer({ minimum: 1 }), { maxItems: 10000 }))
}, { additionalProperties: false })

const BroadcastBody = Type.Object({
  organisation: Type.String({ minLength: 1, maxLength: 40 }),
  subject: Type.String({ minLength: 1, maxLength: 1000 }),
  body: Type.String({ maxLength: 100000 }),
  priority: Type.Union([Type.Literal('emergency'), Type.Literal('normal'), Type.Literal('bulk')], { default: 'normal' }),
  targets: Targets
}, { additionalProperties: false })

const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) })
const OrgParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 40 }) })

declare module 'fastify' {
  interface FastifyRequest { apiToken?: ApiToken }
}

export function apiRoutes (appliance: Appliance): FastifyPluginAsync {
  return async (app) => {
    app.addHook('onRequest', async (request) => { request.apiToken = authenticate(appliance, request) })
    app.addContentTypeParser(['text/csv', 'application/vnd.ms-excel', 'application/octet-stream'], { parseAs: 'buffer', bodyLimit: 20 * 1024 * 1024 },
      (_req, body, done) => { done(null, body) })

    broadcastRoutes(app, appliance)
    memberRoutes(app, appliance)
    attentionRoutes(app, appliance)
    alertRoutes(app, appliance)
    capRoutes(app, appliance)
    scheduleRoutes(app, appliance)
  }
}

function authenticate (appliance: Appliance, request: FastifyRequest): ApiToken {
  const header = request.headers.authorization ?? ''
  const match = /^Bearer\s+(\S+)$/i.exec(header)
  const token = match?.[1] === undefined ? undefined : findToken(appliance.store, match[1])
  if (token === undefined) throw new MimamoriError('MIMAMORI_UNAUTHORIZED')
  return token
}

export function requireScope (request: FastifyRequest, scope: Scope): ApiToken {
  const token = request.apiToken
  if (token === undefined) throw new MimamoriError('MIMAMORI_UNAUTHORIZED')
  if (!hasScope(token, scope)) throw new MimamoriError('MIMAMORI_FORBIDDEN', `the token lacks the scope ${scope}`)
  return token
}

/** A token bound to an organisation reaches that organisation and those below it only. */
export function requireOrganisation (appliance: Appliance, token: ApiToken, organisationId: string): void {
  appliance.directory.organisation(organisationId)
  if (token.organisationId === undefined) return
  if (!appliance.directory.organisationSubtree(token.organisationId).includes(organisationId)) {
    throw new MimamoriError('MIMAMORI_FORBIDDEN', `the token does not act for ${organisationId}`)
  }
}

function broadcastRoutes (app: FastifyInstance, appliance: Appliance): void {
  app.post<{ Body: Static<typeof BroadcastBody> }>('/broadcasts', {
    schema: { body: BroadcastBody }
  }, async (request, reply) => {
    const token = requireScope(request, 'broadcasts:write')
    const body = request.body
    requireOrganisation(appliance, token, body.organisation)
    const groups = [...(body.targets.groups ?? [])]
    for (const path of body.targets.groupPaths ?? []) groups.push(groupIdByPath(appliance, body.organisation, path))
    const targets: Broadcast['targets'] = { ...body.targets, groups }
    delete (targets as { groupPaths?: unknown }).groupPaths

    const broadcast = appliance.submit({
      organisationId: body.organisation,
      subject: body.subject,
      body: body.body,
      priority: body.priority,
      targets,
      createdBy: `token:${token.name}`
    })
    void reply.code(201)
    return appliance.report(broadcast.id)
  })

  app.get<{ Params: Static<typeof IdParams> }>('/broadcasts/:id', { schema: { params: IdParams } }, async (request) => {
    const token = requireScope(request, 'broadcasts:read')
    const broadcast = appliance.book.get(request.params.id)
    requireOrganisation(appliance, token, broadcast.organisationId)
    return appliance.report(broadcast.id)
  })

  app.get('/broadcasts', async (request) => {
    const token = requireScope(request, 'broadcasts:read')
    const scope = token.organisationId === undefined
      ? undefined
      : new Set(appliance.directory.organisationSubtree(token.organisationId))
    return { broadcasts: appliance.book.list(scope).map((b) => appliance.report(b.id)) }
  })

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    app.post<{ Params: Static<typeof IdParams> }>(`/broadcasts/:id/${action}`, { schema: { params: IdParams } }, async (request) => {
      const token = requireScope(request, 'broadcasts:write')
      const broadcast = appliance.book.get(request.params.id)
      requireOrganisation(appliance, token, broadcast.organisationId)
      appliance[action](broadcast.id)
      appliance.log.info({ broadcast: broadcast.id, action, by: `token:${token.name}` }, `broadcast ${action}`)
      return appliance.report(broadcast.id)
    })
  }
}

export function groupIdByPath (appliance: Appliance, organisationId: string, path: string): string {
  const group = appliance.directory.groupByPath(organisationId, path.split('/').map((p) => p.trim()))
  if (group === undefined) throw new MimamoriError('MIMAMORI_NOT_FOUND', `no group "${path}" in ${organisationId}`)
  return group.id
}

function memberRoutes (app: FastifyInstance, appliance: Appliance): void {
  app.post<{ Params: Static<typeof OrgParams>, Querystring: { dryRun?: boolean } }>('/organisations/:id/members/import', {
    schema: {
      params: OrgParams,
      querystring: Type.Object({ dryRun: Type.Optional(Type.Boolean()) })
    }
  }, async (request) => {
    const token = requireScope(request, 'members:write')
    requireOrganisation(appliance, token, request.params.id)
    if (!Buffer.isBuffer(request.body)) {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'send the CSV file as the body with Content-Type text/csv')
    }
    // the CSV reader and its charset tables load with the first import, not at start
    const { importMembersCsv } = await import('../../appliance/members/member-import.js')
    const report = importMembersCsv(appliance.directory, request.params.id, request.body,
      { dryRun: request.query.dryRun === true })
    appliance.log.info({
      organisation: request.params.id, imported: report.imported, errors: report.errors.length,
      duplicates: report.duplicates.length, by: `token:${token.name}`
    }, 'members imported')
    return report
  })
}

// What staff must look at: recipients' replies, and members a carrier's domain filter refused.
function attentionRoutes (app: FastifyInstance, appliance: Appliance): void {
  app.get<{ Params: Static<typeof OrgParams>, Querystring: { limit: number } }>('/organisations/:id/replies', {
    schema: {
      params: OrgParams,
      querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }) })
    }
  }, async (request) => {
    const token = requireScope(request, 'members:read')
    requireOrganisation(appliance, token, request.params.id)
    return { replies: organisationReplies(appliance, request.params.id, request.query.limit) }
  })

  app.get<{ Params: Static<typeof OrgParams> }>('/organisations/:id/domain-filtered', {
    schema: { params: OrgParams }
  }, async (request) => {
    const token = requireScope(request, 'members:read')
    requireOrganisation(appliance, token, request.params.id)
    return { members: domainFilteredMembers(appliance, request.params.id) }
  })
}
