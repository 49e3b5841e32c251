// Opening connections: DSN checks, redaction, and the session settings syncguard always uses.

import pg from 'pg';
import { ConnectionError, InputError, SyncGuardError } from '../core/errors.js';

export type Client = pg.Client;

export const APPLICATION_NAME = 'syncguard';

/** A DSN without its password, safe to print. */
export function redactDsn(dsn: string): string {
  try {
    const u = new URL(dsn);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable DSN>';
  }
}

/** Only URL DSNs are accepted; pg reads them without surprises and they can be redacted. */
export function checkDsn(dsn: string | undefined, label: string): string {
  if (dsn === undefined || dsn.trim() === '') throw new InputError(`no ${label} DSN given`);
  let u: URL;
  try {
    u = new URL(dsn);
  } catch {
    throw new InputError(`the ${label} DSN is not a URL; expected postgres://user:password@host:port/database`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new InputError(`the ${label} DSN has scheme ${u.protocol.replace(/:$/, '')}; expected postgres:// or postgresql://`);
  }
  return dsn;
}

export interface ConnectOptions {
  /** Shown in pg_stat_activity; default `syncguard`. */
  readonly applicationName?: string;
  readonly statementTimeoutMs?: number;
  readonly lockTimeoutMs?: number;
}

/** Connects and pins the session settings; errors never contain the password. */
export async function connect(dsn: string, label: string, opts: ConnectOptions = {}): Promise<Client> {
  checkDsn(dsn, label);
  const client = new pg.Client({
    connectionString: dsn,
    application_name: opts.applicationName ?? APPLICATION_NAME,
    connectionTimeoutMillis: 10_000,
    statement_timeout: opts.statementTimeoutMs ?? 0,
    lock_timeout: opts.lockTimeoutMs ?? 10_000,
    idle_in_transaction_session_timeout: 60_000,
  });
  client.on('error', () => {
    // A connection dropped while idle surfaces on the next query; do not crash the process.
  });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConnectionError(`could not connect to the ${label} at ${redactDsn(dsn)}: ${reason}`, { cause: err });
  }
  return client;
}

/** Runs fn in a transaction, rolling back on any error. */
export async function inTransaction<T>(client: Client, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** The single row a query must return, or a named error that says which query returned none. */
export function one<T>(rows: readonly T[], what: string): T {
  const row = rows[0];
  if (row === undefined) throw new SyncGuardError(`${what} returned no row; is the syncguard schema complete?`);
  return row;
}
