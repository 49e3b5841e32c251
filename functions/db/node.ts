// A connection to one node, as flows/ and db/ use it: queries, transactions, client-side time
// bounds, and errors that name the node. PgNode implements it over a pg.Client through pg's
// public API only: each query's client-side timeout goes in its own config (pg reads
// `config.query_timeout`), and errors are annotated here, in the node's own query.

import type { Socket } from 'node:net';
import type pg from 'pg';
import { ConnectionError, IncompatibleError } from '../core/errors.js';
import { TIME } from '../core/time-limits.js';
import type { Deadline } from './deadline.js';
import { SQLSTATE, sqlstateOf } from './sqlstate.js';

// biome-ignore lint/suspicious/noExplicitAny: each caller names its rows' type, as with pg
type AnyRow = any;

export interface Rows<R> {
  readonly rows: R[];
  readonly rowCount: number | null;
}

export interface Node {
  /** How messages name the node (the label given to connect). */
  readonly label: string;
  query<R = AnyRow>(text: string, values?: readonly unknown[]): Promise<Rows<R>>;
  /** Runs fn in a transaction on this node, rolling back on any error. */
  transaction<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Runs fn with every query on this node ending by the deadline, whatever each query's own
   * timeout says (only ever earlier); the node's earlier bound comes back after (cached connections).
   */
  within<T>(deadline: Deadline, fn: () => Promise<T>): Promise<T>;
  /**
   * Runs fn with each of its queries given this client-side timeout (ms; a function is asked
   * before each query; null: none), within the node's deadline; the caller's comes back after. A
   * query that gets no answer in time fails with a ConnectionError naming the node, whatever the
   * server is doing: server timeouts cannot end a wait on a frozen backend or a partitioned network.
   */
  withQueryTimeout<T>(ms: number | null | (() => number | null), fn: () => Promise<T>): Promise<T>;
  /** Closes the connection, never waiting long for a frozen server. */
  close(): Promise<void>;
}

const errorNodes = new WeakMap<object, string>();

/** The node a PostgreSQL error came from (the label of its connection), so a raw error can name it. */
export function nodeOfError(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? errorNodes.get(err) : undefined;
}

const NOT_QUERYABLE = 'Client has encountered a connection error and is not queryable';

export class PgNode implements Node {
  private deadline: Deadline | undefined;
  private ownTimeout: number | null | (() => number | null) = null;
  /** Set once a query got no answer in time: the connection can never be trusted again. */
  private dropped = false;
  private readonly socket: Socket | undefined;

  /**
   * @param socket the connection's own socket when connect made it (pg's `stream` option), so
   *   that a frozen server's connection can be closed at once; without it, pg's end() is used.
   */
  constructor(
    private readonly client: pg.Client,
    readonly label: string,
    opts: { deadline?: Deadline; socket?: Socket } = {},
  ) {
    this.deadline = opts.deadline;
    this.socket = opts.socket;
  }

  async query<R = AnyRow>(text: string, values?: readonly unknown[]): Promise<Rows<R>> {
    if (this.dropped) throw this.annotate(new Error(NOT_QUERYABLE));
    const timeout = this.timeoutMs();
    const config: pg.QueryConfig & { query_timeout?: number } = {
      text,
      ...(values === undefined ? {} : { values: [...values] }),
      ...(timeout === null ? {} : { query_timeout: timeout }),
    };
    try {
      const r = await this.client.query(config);
      return { rows: r.rows as R[], rowCount: r.rowCount };
    } catch (err) {
      throw this.annotate(err);
    }
  }

  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    await this.query('BEGIN');
    try {
      const result = await fn();
      await this.query('COMMIT');
      return result;
    } catch (err) {
      await this.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }

  // within and withQueryTimeout save and restore the node's bound around fn: calls on one node
  // must nest, never overlap (each drain worker, and each side of a pair, has its own node).
  async within<T>(deadline: Deadline, fn: () => Promise<T>): Promise<T> {
    const saved = this.deadline;
    this.deadline = deadline.earlierOf(saved);
    try {
      return await fn();
    } finally {
      this.deadline = saved;
    }
  }

  async withQueryTimeout<T>(ms: number | null | (() => number | null), fn: () => Promise<T>): Promise<T> {
    const saved = this.ownTimeout;
    this.ownTimeout = ms;
    try {
      return await fn();
    } finally {
      this.ownTimeout = saved;
    }
  }

  /**
   * A healthy server answers the goodbye within milliseconds; a frozen one never does, so after a
   * short wait the socket is closed (the server ends the session on its own). The wait's timer is
   * cleared either way: a timer left running would hold the process.
   */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.client.end().catch(() => {}),
      new Promise<void>((r) => {
        timer = setTimeout(r, TIME.closeWaitMs);
      }),
    ]);
    clearTimeout(timer);
    this.socket?.destroy();
  }

  /** The client-side timeout the next query gets: its own, cut to what is left before the deadline. */
  private timeoutMs(): number | null {
    const given = typeof this.ownTimeout === 'function' ? this.ownTimeout() : this.ownTimeout;
    const own = given === null ? null : Math.max(1, Math.ceil(given));
    const left = this.deadline?.statementTimeoutMs() ?? null;
    return own === null ? left : left === null ? own : Math.min(own, left);
  }

  /** The server may still answer a query that timed out: the connection is closed, never reused. */
  private drop(): void {
    this.dropped = true;
    if (this.socket !== undefined) this.socket.destroy();
    else this.client.end().catch(() => {}); // pg's end() closes the socket of a client with a query in flight
  }

  /** A query that got no answer in time, or a connection that dropped, named by its node. */
  private annotate(err: unknown): unknown {
    const label = this.label;
    const message = err instanceof Error ? err.message : String(err);
    if (message === 'Query read timeout') {
      this.drop();
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
}
