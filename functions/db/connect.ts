// Opening connections: DSN checks, redaction, and the session settings syncguard always uses.

import pg from 'pg';
import { ConnectionError, IncompatibleError, InputError, SyncGuardError } from '../core/errors.js';

export type Client = pg.Client;

export const APPLICATION_NAME = 'syncguard';

/** A DSN without its password (user info, `password=` query parameter), safe to print. */
export function redactDsn(dsn: string): string {
  try {
    const u = new URL(dsn);
    if (u.password !== '') u.password = '***';
    for (const k of [...u.searchParams.keys()]) if (/^password$/i.test(k)) u.searchParams.set(k, '***');
    return u.toString();
  } catch {
    return '<unparseable DSN>';
  }
}

/**
 * The secrets a DSN carries, in every form a user may write one: the URL password (raw and
 * percent-decoded), a `password` query parameter, or `password=` in a key/value string.
 */
export function secretsOf(dsn: string): string[] {
  const found: string[] = [];
  try {
    const u = new URL(dsn);
    if (u.password !== '') found.push(u.password, decodeURIComponent(u.password));
    for (const [k, v] of u.searchParams) if (/^password$/i.test(k) && v !== '') found.push(v, encodeURIComponent(v));
  } catch {
    // not a URL: look for key/value pairs below
  }
  for (const m of dsn.matchAll(/password\s*=\s*(?:'((?:[^'\\]|\\.)*)'|([^\s&]+))/gi)) {
    const v = m[1] ?? m[2];
    if (v !== undefined && v !== '') found.push(v);
  }
  return [...new Set(found)].filter((x) => x.length > 0);
}

/** Replaces every occurrence of each secret in a text by ***. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
  return out;
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const labels = new WeakMap<Client, string>();

/** A query that got no answer in time, or a connection that dropped, named by its node. */
function annotate(client: Client, err: unknown): unknown {
  const label = labels.get(client) ?? 'database';
  const message = err instanceof Error ? err.message : String(err);
  if (message === 'Query read timeout') {
    destroy(client); // the server may answer later: the connection can never be trusted again
    return new ConnectionError(
      `the ${label} did not answer within the time allowed (a frozen backend or a network partition?); nothing was changed by this query. Check the ${label} and run the command again`,
      { cause: err },
    );
  }
  const code = (err as { code?: string }).code;
  if (
    /Connection terminated|ECONNRESET|EPIPE|Client has encountered a connection error/i.test(message) ||
    code === '57P01' ||
    code === '57P02' ||
    code === '57P03'
  ) {
    return new ConnectionError(`lost the connection to the ${label}: ${message}; check the ${label} and run the command again`, {
      cause: err,
    });
  }
  if (code === '42501' && /pg_subscription\b/.test(message)) {
    // PostgreSQL 13 lets only superusers read pg_subscription (14 opened it, but subconninfo)
    return new IncompatibleError(
      `the ${label} does not let this role read pg_subscription (PostgreSQL 13 restricts it to superusers), and syncguard needs it to find the subscription; run syncguard there as a superuser (install it as one, too), or upgrade the ${label} to PostgreSQL 14 or later`,
      { cause: err },
    );
  }
  return err;
}

function destroy(client: Client): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/**
 * Sets the client-side deadline of each later query on this connection (null: none). A query
 * that gets no answer in time fails with a ConnectionError naming the node, whatever the server
 * is doing: server timeouts cannot end a wait on a frozen backend or a partitioned network.
 */
export function setQueryTimeout(client: Client, ms: number | null): void {
  (client as unknown as { connectionParameters: { query_timeout: number | false } }).connectionParameters.query_timeout =
    ms === null ? false : Math.max(1, Math.ceil(ms));
}

/** The client-side query deadline set now (null: none). */
export function queryTimeout(client: Client): number | null {
  const v = (client as unknown as { connectionParameters: { query_timeout: number | false } }).connectionParameters.query_timeout;
  return v === false ? null : v;
}

/** Closes a connection, giving up after 2 s (a frozen peer never answers the goodbye). */
export async function closeClient(client: Client): Promise<void> {
  await Promise.race([client.end().catch(() => {}), sleep(2000)]);
  destroy(client);
}

/**
 * Connects and pins the session settings; errors never contain the password. TCP keepalive
 * notices a peer that vanished; every query error names the node it came from.
 */
export async function connect(dsn: string, label: string, opts: ConnectOptions = {}): Promise<Client> {
  checkDsn(dsn, label);
  const client = new pg.Client({
    connectionString: dsn,
    application_name: opts.applicationName ?? APPLICATION_NAME,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
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
    throw new ConnectionError(`could not connect to the ${label} at ${redactDsn(dsn)}: ${redactSecrets(reason, secretsOf(dsn))}`, {
      cause: err,
    });
  }
  labels.set(client, label);
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const result = query(...args);
    return result instanceof Promise ? result.catch((err: unknown) => Promise.reject(annotate(client, err))) : result;
  };
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
