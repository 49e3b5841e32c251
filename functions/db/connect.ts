// Opening connections: DSN checks, redaction, and the session settings syncguard always uses.

import pg from 'pg';
import { normalizeDsn } from '../core/dsn.js';
import { ConnectionError, IncompatibleError, InputError, SyncGuardError } from '../core/errors.js';
import { TIME } from '../core/time-limits.js';
import type { Deadline } from './deadline.js';
import { SQLSTATE, sqlstateOf } from './sqlstate.js';

export type Client = pg.Client;

export const APPLICATION_NAME = 'syncguard';

/** A DSN without its password (user info, `password=` query parameter), safe to print. */
export function redactDsn(dsn: string): string {
  try {
    const u = new URL(normalizeDsn(dsn, 'database'));
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
    const u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(dsn.trim()) ? normalizeDsn(dsn, 'database') : dsn);
    if (u.password !== '') found.push(u.password, decodeURIComponent(u.password));
    for (const [k, v] of u.searchParams) if (/^password$/i.test(k) && v !== '') found.push(v, encodeURIComponent(v));
  } catch {
    // not a URL: look for key/value pairs below
  }
  for (const m of dsn.matchAll(/password\s*=\s*(?:'((?:[^'\\]|\\.)*)'|([^\s&]+))/gi)) {
    const raw = m[1] ?? m[2];
    if (raw === undefined || raw === '') continue;
    // as written, unescaped (key=value quoting), and percent-encoded / -decoded (as a normalized URL shows it)
    const plain = m[1] !== undefined ? raw.replace(/\\(.)/g, '$1') : raw;
    found.push(raw, plain, encodeURIComponent(plain));
    try {
      found.push(decodeURIComponent(raw));
    } catch {
      // not percent-encoded
    }
  }
  return [...new Set(found)].filter((x) => x.length > 0);
}

/** Replaces every occurrence of each secret in a text by ***. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
  return out;
}

/**
 * A DSN in any form libpq accepts that syncguard can name and redact (a URL, a socket URL with an
 * empty host and ?host=/dir, or key=value pairs), returned as one URL form (core/dsn.ts).
 */
export function checkDsn(dsn: string | undefined, label: string): string {
  if (dsn === undefined || dsn.trim() === '') throw new InputError(`no ${label} DSN given`);
  return normalizeDsn(dsn, label);
}

export interface ConnectOptions {
  /** Shown in pg_stat_activity; default `syncguard`. */
  readonly applicationName?: string;
  readonly statementTimeoutMs?: number;
  readonly lockTimeoutMs?: number;
  /**
   * The command's promised end: the connection attempt ends by then (10 s at most), and so does
   * every query on the connection (limitDeadline).
   */
  readonly deadline?: Deadline;
}

const labels = new WeakMap<Client, string>();

/** How messages name the node this connection goes to (the label given to connect). */
export function labelOf(client: Client): string {
  return labels.get(client) ?? 'database';
}

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
  const code = sqlstateOf(err);
  if (
    /Connection terminated|ECONNRESET|EPIPE|Client has encountered a connection error/i.test(message) ||
    code === SQLSTATE.adminShutdown ||
    code === SQLSTATE.crashShutdown ||
    code === SQLSTATE.cannotConnectNow
  ) {
    return new ConnectionError(`lost the connection to the ${label}: ${message}; check the ${label} and run the command again`, {
      cause: err,
    });
  }
  if (code === SQLSTATE.insufficientPrivilege && /pg_subscription\b/.test(message)) {
    // PostgreSQL 13 lets only superusers read pg_subscription (14 opened it, but subconninfo)
    return new IncompatibleError(
      `the ${label} does not let this role read pg_subscription (PostgreSQL 13 restricts it to superusers), and syncguard needs it to find the subscription; run syncguard there as a superuser (install it as one, too), or upgrade the ${label} to PostgreSQL 14 or later`,
      { cause: err },
    );
  }
  if (typeof code === 'string' && typeof err === 'object' && err !== null) errorNodes.set(err, label);
  return err;
}

const errorNodes = new WeakMap<object, string>();

/** The node a PostgreSQL error came from (the label of its connection), so a raw error can name it. */
export function nodeOfError(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? errorNodes.get(err) : undefined;
}

function destroy(client: Client): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

const queryTimeouts = new WeakMap<Client, number | null>();
const deadlines = new WeakMap<Client, Deadline>();

/**
 * Sets the client-side deadline of each later query on this connection (null: none). A query
 * that gets no answer in time fails with a ConnectionError naming the node, whatever the server
 * is doing: server timeouts cannot end a wait on a frozen backend or a partitioned network.
 */
export function setQueryTimeout(client: Client, ms: number | null): void {
  queryTimeouts.set(client, ms === null ? null : Math.max(1, Math.ceil(ms)));
}

/** The client-side query deadline set now (null: none). */
export function queryTimeout(client: Client): number | null {
  return queryTimeouts.get(client) ?? null;
}

/**
 * The moment by which every query on this connection must have its answer, whatever each
 * query's own timeout says: a command's promised end. Only ever moved earlier.
 */
function limitDeadline(client: Client, deadline: Deadline): void {
  deadlines.set(client, deadline.earlierOf(deadlines.get(client)));
}

/** Runs fn with every query of these connections ending by the deadline; their own deadlines come back after (cached connections). */
export async function withinDeadline<T>(clients: readonly Client[], deadline: Deadline, fn: () => Promise<T>): Promise<T> {
  const saved = clients.map((c) => deadlines.get(c));
  for (const c of clients) limitDeadline(c, deadline);
  try {
    return await fn();
  } finally {
    clients.forEach((c, i) => {
      const d = saved[i];
      if (d === undefined) deadlines.delete(c);
      else deadlines.set(c, d);
    });
  }
}

/** The client-side timeout the next query gets: its own, cut to what is left before the deadline. */
function effectiveTimeout(client: Client): number | false {
  const own = queryTimeouts.get(client) ?? null;
  const deadline = deadlines.get(client);
  const left = deadline === undefined ? null : deadline.statementTimeoutMs();
  const ms = own === null ? left : left === null ? own : Math.min(own, left);
  return ms === null ? false : ms;
}

/**
 * Closes a connection. A healthy server answers the goodbye within milliseconds; a frozen one
 * never does, so after a short wait the socket is closed (the server ends the session on its
 * own). The wait's timer is cleared either way: a timer left running would hold the process.
 */
export async function closeClient(client: Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.end().catch(() => {}),
    new Promise<void>((r) => {
      timer = setTimeout(r, TIME.closeWaitMs);
    }),
  ]);
  clearTimeout(timer);
  destroy(client);
}

/**
 * The DSN as handed to pg. pg 8 treats sslmode prefer, require and verify-ca as verify-full (the
 * server's certificate must be valid for its host name; prefer does not fall back to plain text)
 * and prints an 8-line SECURITY WARNING saying so; syncguard hands pg verify-full, which pg reads
 * the same way without the warning, and says in a failed connection's one-line error what the
 * mode meant.
 */
function forDriver(dsn: string): { connectionString: string; sslNote: string } {
  const u = new URL(dsn);
  const mode = u.searchParams.get('sslmode');
  if (mode !== 'prefer' && mode !== 'require' && mode !== 'verify-ca') return { connectionString: dsn, sslNote: '' };
  u.searchParams.set('sslmode', 'verify-full');
  return {
    connectionString: u.toString(),
    sslNote: ` (sslmode=${mode} here means verify-full, as in the pg driver: TLS is required and the server's certificate must be valid for its host name; use sslmode=no-verify to encrypt without checking the certificate, sslrootcert=FILE for a private CA, or sslmode=disable for no TLS)`,
  };
}

/**
 * Connects and pins the session settings; errors never contain the password. TCP keepalive
 * notices a peer that vanished; every query error names the node it came from.
 */
export async function connect(given: string, label: string, opts: ConnectOptions = {}): Promise<Client> {
  const dsn = checkDsn(given, label);
  const connectMs = Math.min(TIME.connectTimeoutMs, opts.deadline?.statementTimeoutMs() ?? TIME.connectTimeoutMs);
  const { connectionString, sslNote } = forDriver(dsn);
  let client: pg.Client;
  try {
    client = new pg.Client({
      connectionString,
      application_name: opts.applicationName ?? APPLICATION_NAME,
      connectionTimeoutMillis: connectMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: TIME.keepAliveDelayMs,
      statement_timeout: opts.statementTimeoutMs ?? 0,
      lock_timeout: opts.lockTimeoutMs ?? TIME.sessionLockTimeoutMs,
      idle_in_transaction_session_timeout: TIME.idleInTransactionMs,
    });
  } catch (err) {
    // pg reads sslcert / sslkey / sslrootcert files while it parses the DSN
    const e = err as { code?: string; path?: string; message?: string };
    throw new InputError(
      `the ${label} DSN names a file that cannot be read${e.path === undefined ? '' : ` (${e.path})`}: ${e.code ?? e.message ?? String(err)}; check the sslcert, sslkey and sslrootcert parameters of the ${label} DSN`,
      { cause: err },
    );
  }
  client.on('error', () => {
    // A connection dropped while idle surfaces on the next query; do not crash the process.
  });
  try {
    await client.connect();
  } catch (err) {
    destroy(client);
    const reason = err instanceof Error ? err.message : String(err);
    if (/timeout expired|connection timeout/i.test(reason)) {
      throw new ConnectionError(
        `could not connect to the ${label} at ${redactDsn(dsn)} within the time allowed (${(connectMs / 1000).toFixed(1)} s; a frozen server or a network partition?); check the ${label} and run the command again`,
        { cause: err },
      );
    }
    throw new ConnectionError(
      `could not connect to the ${label} at ${redactDsn(dsn)}: ${redactSecrets(reason, [...secretsOf(given), ...secretsOf(dsn)])}${sslNote}`,
      {
        cause: err,
      },
    );
  }
  labels.set(client, label);
  if (opts.deadline !== undefined) limitDeadline(client, opts.deadline);
  const params = (client as unknown as { connectionParameters: { query_timeout: number | false } }).connectionParameters;
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    params.query_timeout = effectiveTimeout(client);
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
