// Opening connections: the session settings syncguard always uses, and the node (db/node.ts)
// every later query goes through. DSN checks and redaction are in db/dsn.ts.

import { Socket } from 'node:net';
import pg from 'pg';
import { ConnectionError, InputError, SyncGuardError } from '../core/errors.js';
import { TIME } from '../core/time-limits.js';
import type { Deadline } from './deadline.js';
import { checkDsn, forDriver, redactDsn, redactSecrets, secretsOf } from './dsn.js';
import { type Node, PgNode } from './node.js';

/** A connection to one node, as flows/ and db/ take it (db/node.ts). */
export type Client = Node;

export const APPLICATION_NAME = 'syncguard';

export interface ConnectOptions {
  /** Shown in pg_stat_activity; default `syncguard`. */
  readonly applicationName?: string;
  readonly statementTimeoutMs?: number;
  readonly lockTimeoutMs?: number;
  /**
   * The command's promised end: the connection attempt ends by then (10 s at most), and so does
   * every query on the connection (Node.within).
   */
  readonly deadline?: Deadline;
}

/** Runs fn with every query of these nodes ending by the deadline; their own deadlines come back after (cached connections). */
export async function withinDeadline<T>(nodes: readonly Node[], deadline: Deadline, fn: () => Promise<T>): Promise<T> {
  const run = nodes.reduceRight<() => Promise<T>>((inner, node) => () => node.within(deadline, inner), fn);
  return run();
}

/**
 * Connects and pins the session settings; errors never contain the password. TCP keepalive
 * notices a peer that vanished; every query error names the node it came from.
 */
export async function connect(given: string, label: string, opts: ConnectOptions = {}): Promise<Client> {
  const dsn = checkDsn(given, label);
  const connectMs = Math.min(TIME.connectTimeoutMs, opts.deadline?.statementTimeoutMs() ?? TIME.connectTimeoutMs);
  const { connectionString, sslNote } = forDriver(dsn);
  // the connection's own socket (pg's public `stream` option), so that a frozen server's
  // connection can be closed at once
  const socket = new Socket();
  let client: pg.Client;
  try {
    client = new pg.Client({
      connectionString,
      stream: () => socket,
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
    socket.destroy();
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
  return new PgNode(client, label, { ...(opts.deadline === undefined ? {} : { deadline: opts.deadline }), socket });
}

/** The single row a query must return, or a named error that says which query returned none. */
export function one<T>(rows: readonly T[], what: string): T {
  const row = rows[0];
  if (row === undefined) throw new SyncGuardError(`${what} returned no row; is the syncguard schema complete?`);
  return row;
}
