// Runs in the appliance: bearer tokens for other systems and scripts. Only a hash of each token
// is stored; the secret is shown once, when it is made.

import { createHash, randomBytes } from 'node:crypto'
import type { Store } from './store/store.js'
import { MimamoriError } from './errors.js'

export const SCOPES = [
  'broadcasts:read', 'broadcasts:write', 'members:read', 'members:write', 'feeds:write', 'admin'
] as const
export type Scope = typeof SCOPES[number]

export interface ApiToken {
  name: string
  scopes: Scope[]
  /** the organisation (with its subtree) the token acts for; city-wide when absent */
  organisationId?: string
  createdAt: string
}

const PREFIX = 'mmr_'

function hash (secret: string): string {
  return createHash('sha256').update(secret).digest('base64url')
}

export function createToken (store: Store, input: Omit<ApiToken, 'createdAt'>): { secret: string, token: ApiToken } {
  const unknown = input.scopes.filter((s) => !SCOPES.includes(s))
  if (unknown.length > 0 || input.scopes.length === 0) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `scopes must be some of ${SCOPES.join(', ')}`)
  }
  const secret = PREFIX + randomBytes(24).toString('base64url')
  const token: ApiToken = { ...input, createdAt: new Date().toISOString() }
  store.tokens.putSync(hash(secret), token)
  return { secret, token }
}

/** The token a bearer secret names, or undefined. */
export function findToken (store: Store, secret: string): ApiToken | undefined {
  if (!secret.startsWith(PREFIX) || secret.length > 100) return undefined
  return store.tokens.get(hash(secret)) as ApiToken | undefined
}

export function hasScope (token: ApiToken, scope: Scope): boolean {
  return token.scopes.includes(scope) || token.scopes.includes('admin')
}
