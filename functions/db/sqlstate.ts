// The PostgreSQL error codes syncguard acts on, named once (https://www.postgresql.org/docs/current/errcodes-appendix.html),
// and the one way to read a code off an error the driver threw. The control plane's own codes
// (SGE01..SGE08) and the named errors they become are in db/plans.ts.

export const SQLSTATE = {
  /** query_canceled: statement_timeout, or a cancel request. */
  queryCanceled: '57014',
  /** lock_not_available: lock_timeout, or NOWAIT. */
  lockNotAvailable: '55P03',
  insufficientPrivilege: '42501',
  /** admin_shutdown, crash_shutdown, cannot_connect_now: the server went away under the session. */
  adminShutdown: '57P01',
  crashShutdown: '57P02',
  cannotConnectNow: '57P03',
  /** invalid_function_definition: CREATE OR REPLACE cannot change a return type, argument names or defaults. */
  invalidFunctionDefinition: '42P13',
  /** invalid_table_definition: CREATE OR REPLACE VIEW cannot drop or rename a view's columns. */
  invalidTableDefinition: '42P16',
  /** invalid_password: the password was refused (a rotated secret read before its rotation). */
  invalidPassword: '28P01',
} as const;

/** The SQLSTATE of an error the pg driver threw; '' for anything else. */
export const sqlstateOf = (err: unknown): string => String((err as { code?: unknown } | null)?.code ?? '');
