// Runs in the appliance's main thread: the API of the hazard desk — the alert drafts the rules
// made (list, approve, withdraw) and the alert rules themselves (city admins only).

import type { FastifyInstance } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { Appliance } from '../../appliance/appliance.js'
import { AlertRuleSchema } from '../../appliance/feeds/feeds-config.js'
import { deleteRule, getRule, listRules, saveRule } from '../../appliance/feeds/alert-rules.js'
import type { DraftState } from '../../appliance/feeds/hazard-desk.js'
import { MimamoriError } from '../../appliance/errors.js'
import { requireOrganisation, requireScope } from './api-routes.js'

const STATES = ['awaiting-approval', 'held', 'sending', 'sent', 'withdrawn', 'expired', 'failed'] as const
const DraftQuery = Type.Object({
  state: Type.Optional(Type.Union(STATES.map((s) => Type.Literal(s)))),
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 })
})
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) })
const RuleParams = Type.Object({ id: AlertRuleSchema.properties.id })
const Withdraw = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false })

export function alertRoutes (app: FastifyInstance, appliance: Appliance): void {
  draftRoutes(app, appliance)
  ruleRoutes(app, appliance)
}

function draftRoutes (app: FastifyInstance, appliance: Appliance): void {
  app.get<{ Querystring: Static<typeof DraftQuery> }>('/alert-drafts', { schema: { querystring: DraftQuery } },
    async (request) => {
      const token = requireScope(request, 'broadcasts:read')
      const organisations = token.organisationId === undefined
        ? undefined
        : new Set(appliance.directory.organisationSubtree(token.organisationId))
      const states = request.query.state === undefined ? undefined : new Set<DraftState>([request.query.state])
      const filter = { ...(organisations === undefined ? {} : { organisations }), ...(states === undefined ? {} : { states }) }
      return { drafts: appliance.hazards.drafts(filter).slice(0, request.query.limit) }
    })

  app.get<{ Params: Static<typeof IdParams> }>('/alert-drafts/:id', { schema: { params: IdParams } }, async (request) => {
    const token = requireScope(request, 'broadcasts:read')
    const draft = appliance.hazards.draft(request.params.id)
    requireOrganisation(appliance, token, draft.organisationId)
    return draft
  })

  app.post<{ Params: Static<typeof IdParams> }>('/alert-drafts/:id/approve', { schema: { params: IdParams } },
    async (request) => {
      const token = requireScope(request, 'broadcasts:write')
      requireOrganisation(appliance, token, appliance.hazards.draft(request.params.id).organisationId)
      return appliance.hazards.approve(request.params.id, `token:${token.name}`)
    })

  app.post<{ Params: Static<typeof IdParams>, Body: Static<typeof Withdraw> | undefined }>('/alert-drafts/:id/withdraw', {
    schema: { params: IdParams, body: Type.Optional(Withdraw) }
  }, async (request) => {
    const token = requireScope(request, 'broadcasts:write')
    requireOrganisation(appliance, token, appliance.hazards.draft(request.params.id).organisationId)
    return appliance.hazards.withdraw(request.params.id, `token:${token.name}`, request.body?.reason)
  })
}

function ruleRoutes (app: FastifyInstance, appliance: Appliance): void {
  app.get('/alert-rules', async (request) => {
    requireScope(request, 'admin')
    return { rules: listRules(appliance.store) }
  })

  app.get<{ Params: Static<typeof RuleParams> }>('/alert-rules/:id', { schema: { params: RuleParams } }, async (request) => {
    requireScope(request, 'admin')
    return getRule(appliance.store, request.params.id)
  })

  app.put<{ Params: Static<typeof RuleParams>, Body: Static<typeof AlertRuleSchema> }>('/alert-rules/:id', {
    schema: { params: RuleParams, body: AlertRuleSchema }
  }, async (request) => {
    const token = requireScope(request, 'admin')
    if (request.body.id !== request.params.id) {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'the rule id in the body differs from the one in the path')
    }
    appliance.directory.organisation(request.body.organisation)
    const rule = saveRule(appliance.store, request.body)
    appliance.log.info({ rule: rule.id, by: `token:${token.name}` }, 'alert rule saved')
    return rule
  })

  app.delete<{ Params: Static<typeof RuleParams> }>('/alert-rules/:id', { schema: { params: RuleParams } },
    async (request, reply) => {
      const token = requireScope(request, 'admin')
      deleteRule(appliance.store, request.params.id)
      appliance.log.info({ rule: request.params.id, by: `token:${token.name}` }, 'alert rule deleted')
      return await reply.code(204).send()
    })
}
