// Runs in the appliance's main thread: the API of schedules (broadcasts sent at a set time or
// repeating) and of the step-mail calendar. Scopes and organisation checks as for broadcasts.

import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { Appliance } from '../../appliance/appliance.js'
import { PRIORITIES, type Targets as BroadcastTargets } from '../../appliance/broadcasts.js'
import {
  getSchedule, listSchedules, recentRuns, type Schedule
} from '../../appliance/schedules/schedule-book.js'
import {
  DAY_RANGE, MONTH_RANGE, getEntry, listEntries, sentCount, type StepMailEntry
} from '../../appliance/schedules/step-mail-calendar.js'
import { Targets, groupIdByPath, requireOrganisation, requireScope } from './api-routes.js'

// Built when the routes are registered: api-routes.js, which holds Targets, imports this file.
function scheduleBody () {
  return Type.Object({
    organisation: Type.String({ minLength: 1, maxLength: 40 }),
    subject: Type.String({ minLength: 1, maxLength: 1000 }),
    body: Type.String({ maxLength: 100000 }),
    priority: Type.Union(PRIORITIES.map((p) => Type.Literal(p)), { default: 'normal' }),
    targets: Targets,
    at: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
    cron: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    endsAt: Type.Optional(Type.String({ minLength: 1, maxLength: 40 }))
  }, { additionalProperties: false })
}
type ScheduleBody = Static<ReturnType<typeof scheduleBody>>

const StepMailBody = Type.Object({
  organisation: Type.String({ minLength: 1, maxLength: 40 }),
  month: Type.Integer({ minimum: MONTH_RANGE.min, maximum: MONTH_RANGE.max }),
  day: Type.Integer({ minimum: DAY_RANGE.min, maximum: DAY_RANGE.max, default: 0 }),
  subject: Type.String({ minLength: 1, maxLength: 1000 }),
  body: Type.String({ maxLength: 100000 }),
  // Absent: the child-rearing topic; null: every contact with a child's date.
  topic: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 40 }), Type.Null()]))
}, { additionalProperties: false })

const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) })
type Params = Static<typeof IdParams>

export function scheduleRoutes (app: FastifyInstance, appliance: Appliance): void {
  broadcastScheduleRoutes(app, appliance)
  stepMailRoutes(app, appliance)
}

function broadcastScheduleRoutes (app: FastifyInstance, appliance: Appliance): void {
  app.post<{ Body: ScheduleBody }>('/schedules', { schema: { body: scheduleBody() } },
    async (request, reply) => {
      const token = requireScope(request, 'broadcasts:write')
      const { organisation, targets, ...rest } = request.body
      requireOrganisation(appliance, token, organisation)
      const schedule = appliance.scheduler.create({
        ...rest,
        organisationId: organisation,
        targets: apiTargets(appliance, organisation, targets),
        createdBy: `token:${token.name}`
      })
      void reply.code(201)
      return scheduleView(appliance, schedule)
    })

  app.get('/schedules', async (request) => {
    requireScope(request, 'broadcasts:read')
    const schedules = listSchedules(appliance.store, tokenScope(appliance, request))
    return { schedules: schedules.map((s) => scheduleView(appliance, s)) }
  })

  app.get<{ Params: Params }>('/schedules/:id', { schema: { params: IdParams } },
    async (request) => {
      const token = requireScope(request, 'broadcasts:read')
      const schedule = getSchedule(appliance.store, request.params.id)
      requireOrganisation(appliance, token, schedule.organisationId)
      return { ...scheduleView(appliance, schedule), runs: recentRuns(appliance.store, schedule.id) }
    })

  app.delete<{ Params: Params }>('/schedules/:id', { schema: { params: IdParams } },
    async (request, reply) => {
      const token = requireScope(request, 'broadcasts:write')
      const schedule = getSchedule(appliance.store, request.params.id)
      requireOrganisation(appliance, token, schedule.organisationId)
      appliance.scheduler.remove(request.params.id, `token:${token.name}`)
      return await reply.code(204).send()
    })
}

function stepMailRoutes (app: FastifyInstance, appliance: Appliance): void {
  app.post<{ Body: Static<typeof StepMailBody> }>('/step-mail', { schema: { body: StepMailBody } },
    async (request, reply) => {
      const token = requireScope(request, 'broadcasts:write')
      const { organisation, topic, ...rest } = request.body
      requireOrganisation(appliance, token, organisation)
      const entry = appliance.stepMail.add({
        ...rest, organisationId: organisation, topic: topic === undefined ? 'child-rearing' : topic,
        createdBy: `token:${token.name}`
      })
      void reply.code(201)
      return entryView(appliance, entry)
    })

  app.get('/step-mail', async (request) => {
    requireScope(request, 'broadcasts:read')
    const entries = listEntries(appliance.store, tokenScope(appliance, request))
    return { entries: entries.map((e) => entryView(appliance, e)) }
  })

  app.delete<{ Params: Params }>('/step-mail/:id', { schema: { params: IdParams } },
    async (request, reply) => {
      const token = requireScope(request, 'broadcasts:write')
      const entry = getEntry(appliance.store, request.params.id)
      requireOrganisation(appliance, token, entry.organisationId)
      appliance.stepMail.remove(request.params.id, `token:${token.name}`)
      return await reply.code(204).send()
    })
}

/** The organisations a token sees: its own subtree, or all for a city-wide token. */
function tokenScope (appliance: Appliance, request: FastifyRequest): Set<string> | undefined {
  const organisationId = request.apiToken?.organisationId
  if (organisationId === undefined) return undefined
  return new Set(appliance.directory.organisationSubtree(organisationId))
}

// Group paths ('1年/2組') become group ids when the schedule is made, as for a broadcast.
function apiTargets (
  appliance: Appliance, organisationId: string, targets: Static<typeof Targets>
): BroadcastTargets {
  const { groupPaths, ...rest } = targets
  const groups = [...(rest.groups ?? [])]
  for (const path of groupPaths ?? []) groups.push(groupIdByPath(appliance, organisationId, path))
  return { ...rest, groups }
}

function scheduleView (appliance: Appliance, schedule: Schedule): Record<string, unknown> {
  const { lastDue, ...rest } = schedule
  return {
    ...rest,
    timeZone: appliance.config.timeZone,
    nextRunAt: appliance.scheduler.nextRun(schedule)?.toISOString(),
    lastRunAt: lastDue === undefined ? undefined : new Date(lastDue).toISOString()
  }
}

function entryView (appliance: Appliance, entry: StepMailEntry): StepMailEntry & { sent: number } {
  return { ...entry, sent: sentCount(appliance.store, entry.id) }
}
