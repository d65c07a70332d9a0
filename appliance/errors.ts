// The one catalogue of Mimamori's error codes. Every error the appliance raises on purpose is a
// MimamoriError with one of these codes; the API answers with the code and the HTTP status here.
// docs/errors.md lists them for operators and integrators.

export const ERRORS = {
  MIMAMORI_CONFIG_INVALID: { status: 500, text: 'The configuration is invalid' },
  MIMAMORI_KEY_MISSING: { status: 500, text: 'The address key file is missing beside existing data' },
  MIMAMORI_KEY_WRONG: { status: 500, text: 'The address key does not match the existing data' },
  MIMAMORI_KEY_UNREADABLE: { status: 500, text: 'The address key file cannot be read' },
  MIMAMORI_BAD_ADDRESS: { status: 400, text: 'The mail address is not valid' },
  MIMAMORI_HEADER_INJECTION: { status: 400, text: 'A header field contains a line break' },
  MIMAMORI_BAD_REQUEST: { status: 400, text: 'The request is not valid' },
  MIMAMORI_UNAUTHORIZED: { status: 401, text: 'A valid bearer token is required' },
  MIMAMORI_FORBIDDEN: { status: 403, text: 'The token does not allow this' },
  MIMAMORI_NOT_FOUND: { status: 404, text: 'No such record' },
  MIMAMORI_CONFLICT: { status: 409, text: 'The record is in a state that does not allow this' },
  MIMAMORI_NO_RECIPIENTS: { status: 422, text: 'The broadcast has no recipients' },
  MIMAMORI_CSV_UNREADABLE: { status: 400, text: 'The CSV file cannot be read' },
  MIMAMORI_CSV_NO_ADDRESS_COLUMN: { status: 400, text: 'The CSV file has no mail address column' },
  MIMAMORI_DKIM_KEY_INVALID: { status: 500, text: 'The DKIM key cannot be used' },
  MIMAMORI_SIGNUP_LINK_INVALID: { status: 410, text: 'The sign-up link is used, expired or unknown' },
  MIMAMORI_SIGNUP_INVALID: { status: 400, text: 'The sign-up form has problems' },
  MIMAMORI_COMMAND_INVALID: { status: 422, text: 'The mail-in command does not follow the grammar' },
  MIMAMORI_XML_REFUSED: { status: 400, text: 'The XML document is refused: unsafe or not well formed' },
  MIMAMORI_CAP_INVALID: { status: 400, text: 'The CAP alert is not valid' },
  MIMAMORI_CRON_INVALID: { status: 400, text: 'The cron expression is not valid' },
  MIMAMORI_SCHEDULE_TIME_INVALID: { status: 400, text: 'The schedule time is not valid: no offset, past, or ending before its first run' },
  MIMAMORI_INTERNAL: { status: 500, text: 'Internal error' }
} as const

export type ErrorCode = keyof typeof ERRORS

export class MimamoriError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly details?: unknown

  constructor (code: ErrorCode, message?: string, options?: { cause?: unknown, details?: unknown }) {
    super(message ?? ERRORS[code].text, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'MimamoriError'
    this.code = code
    this.statusCode = ERRORS[code].status
    this.details = options?.details
  }
}

/** Throws MIMAMORI_HEADER_INJECTION when a value bound for a header holds CR or LF. */
export function assertHeaderSafe (field: string, value: string): void {
  if (/[\r\n]/.test(value)) {
    throw new MimamoriError('MIMAMORI_HEADER_INJECTION', `${field} contains a line break`)
  }
}
