import t from 'tap'
import type { InjectOptions } from 'fastify'
import { startApi, bearer, json, addMember } from './harness.js'
import type { HazardEvent } from '../../appliance/feeds/hazard-event.js'

function quake (id: string, eventKey: string): HazardEvent {
  return {
    source: 'jma', id, eventKey, kind: 'earthquake', status: 'actual', infoType: 'issue', type: 'VXSE53',
    title: '震源・震度に関する情報', headline: '強い揺れを観測しました。', issuedBy: '気象庁本庁',
    reportedAt: '2026-07-01T05:00:00+09:00',
    areas: [{ table: 'jma-seismic', code: '621', name: '愛媛県中予', label: '震度5強', level: 6, change: 'new' }]
  }
}

const RULE = {
  id: 'quake-higashi', name: '震度5弱以上（東小）', kind: 'earthquake', minLevel: '5弱', organisation: 'higashi-es',
  targets: {}, mode: 'draft'
}

t.test('city admins keep the alert rules; schools approve and withdraw their own drafts', async (t) => {
  const { appliance, app } = await startApi(t)
  addMember(appliance, 'mama@docomo.ne.jp', 'higashi-es')
  const admin = bearer(appliance, ['admin'])
  const higashi = bearer(appliance, ['broadcasts:read', 'broadcasts:write'], 'higashi-es')
  const nishi = bearer(appliance, ['broadcasts:read', 'broadcasts:write'], 'nishi-es')

  const put = await app.inject({ method: 'PUT', url: '/api/v1/alert-rules/quake-higashi', headers: admin, payload: RULE })
  t.equal(put.statusCode, 200)
  t.match(json(put), { id: 'quake-higashi', source: 'staff', mode: 'draft', priority: 'emergency', enabled: true })

  const refusals: Array<[string, InjectOptions, number, string]> = [
    ['a school token', { method: 'PUT', url: '/api/v1/alert-rules/x', headers: higashi, payload: { ...RULE, id: 'x' } }, 403, 'MIMAMORI_FORBIDDEN'],
    ['an unknown level', { method: 'PUT', url: '/api/v1/alert-rules/x', headers: admin, payload: { ...RULE, id: 'x', minLevel: '震度10' } }, 400, 'MIMAMORI_BAD_REQUEST'],
    ['ids that differ', { method: 'PUT', url: '/api/v1/alert-rules/x', headers: admin, payload: RULE }, 400, 'MIMAMORI_BAD_REQUEST'],
    ['an unknown organisation', { method: 'PUT', url: '/api/v1/alert-rules/x', headers: admin, payload: { ...RULE, id: 'x', organisation: 'nowhere' } }, 404, 'MIMAMORI_NOT_FOUND'],
    ['an unknown key', { method: 'PUT', url: '/api/v1/alert-rules/x', headers: admin, payload: { ...RULE, id: 'x', colour: 'red' } }, 400, 'MIMAMORI_BAD_REQUEST'],
    ['a bad id', { method: 'PUT', url: '/api/v1/alert-rules/BAD%20ID', headers: admin, payload: RULE }, 400, 'MIMAMORI_BAD_REQUEST']
  ]
  for (const [name, request, status, code] of refusals) {
    const response = await app.inject(request)
    t.equal(response.statusCode, status, name)
    t.equal(json(response).error?.code, code, name)
  }

  const first = appliance.hazards.ingest(quake('t1', 'E1')).drafts[0] as number
  const second = appliance.hazards.ingest(quake('t2', 'E2')).drafts[0] as number
  const listed = await app.inject({ method: 'GET', url: '/api/v1/alert-drafts?state=awaiting-approval', headers: higashi })
  t.same(json(listed).drafts.map((d: { id: number }) => d.id), [second, first], 'newest first')
  const theirs = await app.inject({ method: 'GET', url: '/api/v1/alert-drafts', headers: nishi })
  t.same(json(theirs).drafts, [], "another school sees none of them")
  const peek = await app.inject({ method: 'GET', url: `/api/v1/alert-drafts/${first}`, headers: nishi })
  t.equal(peek.statusCode, 403)
  const steal = await app.inject({ method: 'POST', url: `/api/v1/alert-drafts/${first}/approve`, headers: nishi })
  t.equal(steal.statusCode, 403, 'nor approves them')

  const approved = await app.inject({ method: 'POST', url: `/api/v1/alert-drafts/${first}/approve`, headers: higashi })
  t.equal(approved.statusCode, 200)
  t.match(json(approved), { state: 'sent', broadcastId: Number })
  const report = await appliance.finished(json(approved).broadcastId)
  t.equal(report.counts.accepted, 1)
  const twice = await app.inject({ method: 'POST', url: `/api/v1/alert-drafts/${first}/approve`, headers: higashi })
  t.equal(twice.statusCode, 409)

  const withdrawn = await app.inject({
    method: 'POST', url: `/api/v1/alert-drafts/${second}/withdraw`, headers: higashi, payload: { reason: '誤報' }
  })
  t.match(json(withdrawn), { state: 'withdrawn', reason: '誤報' })
  t.match(json(withdrawn).history.at(-1), { state: 'withdrawn', by: /^token:/ })

  const gone = await app.inject({ method: 'DELETE', url: '/api/v1/alert-rules/quake-higashi', headers: admin })
  t.equal(gone.statusCode, 204)
  const missing = await app.inject({ method: 'GET', url: '/api/v1/alert-rules/quake-higashi', headers: admin })
  t.equal(missing.statusCode, 404)
  t.same(appliance.hazards.ingest(quake('t3', 'E3')).drafts, [], 'a deleted rule no longer acts')
})
