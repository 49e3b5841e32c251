// The probe's reads and writes (sql/node/0013_probe.sql). One statement or one short transaction
// per function; the planning is in core/probe-plan.ts and the flow in flows/probes.ts.

import type { BucketValue } from '../core/compare.js';
import type { TableRef } from '../core/identifiers.js';
import { insertLsn } from './barrier.js';
import { type Client, one } from './connect.js';

export interface ProbeRoute {
  readonly nodeId: string;
  /** syncguard.probe exists on the subscriber. */
  readonly table: boolean;
  /** tgenabled of the subscriber's probe trigger ('A' = always), null when missing. */
  readonly trigger: string | null;
  /** Subscriptions that carry syncguard.probe, with its sync state. */
  readonly subscriptions: ReadonlyMap<string, string>;
  /** The installer (owner of schema syncguard), and the dedicated owner of syncguard.probe (sql/node/0026). */
  readonly installer: string;
  readonly applyRole: string;
  readonly applyRoleExists: boolean;
  /** Triggers and rules on syncguard's logged tables that syncguard did not create. */
  readonly foreign: readonly string[];
}

/** Where probes can reach the subscriber. */
export async function probeRoute(sub: Client): Promise<ProbeRoute> {
  const { rows } = await sub.query<{
    r: {
      nodeId: string;
      table: boolean;
      trigger: string | null;
      subscriptions: Record<string, string>;
      installer: string;
      applyRole: string;
      applyRoleExists: boolean;
      foreign: string[];
    };
  }>('SELECT syncguard.probe_route() AS r');
  const r = one(rows, 'syncguard.probe_route').r;
  return {
    nodeId: r.nodeId,
    table: r.table,
    trigger: r.trigger,
    subscriptions: new Map(Object.entries(r.subscriptions)),
    installer: r.installer,
    applyRole: r.applyRole,
    applyRoleExists: r.applyRoleExists,
    foreign: r.foreign,
  };
}

export interface SentProbe {
  readonly id: string;
  readonly values: ReadonlyMap<string, BucketValue>;
  readonly lockWaitMs: number;
  readonly computeMs: number;
  /** From the lock to the end of the commit, as the client saw it. */
  readonly holdMs: number;
  /** The publisher's WAL insert position right after the commit. */
  readonly lsn: string;
}

const parseValues = (v: Record<string, [string, string]> | null): Map<string, BucketValue> =>
  new Map(Object.entries(v ?? {}).map(([b, [r, s]]) => [b, { rows: BigInt(r), sum: BigInt(s) }]));

/**
 * One probe transaction on the publisher: READ COMMITTED, a short lock_timeout, the SHARE lock,
 * the compute and the probe row in one function call, then commit. A busy lock raises 55P03
 * (SQLSTATE.lockNotAvailable) with nothing written.
 */
export async function sendProbe(
  pub: Client,
  p: {
    table: TableRef;
    buckets: readonly string[];
    target: string;
    subscription: string;
    lockTimeoutMs: number;
    /**
     * Cancels the probe (SQLSTATE.queryCanceled, nothing written, the lock released) when the lock
     * wait and the compute under it take longer: the planner sized the batch from the catalogue's
     * row counts, which are stale for exactly the buckets probes target (dirty, never computed,
     * 0 after lost state), so only a bound on the statement bounds what the SHARE lock holds back.
     */
    statementTimeoutMs?: number;
  },
): Promise<SentProbe> {
  await pub.query('BEGIN ISOLATION LEVEL READ COMMITTED');
  try {
    await pub.query('SELECT set_config($1, $2, true)', ['lock_timeout', `${Math.max(1, Math.round(p.lockTimeoutMs))}ms`]);
    if (p.statementTimeoutMs !== undefined)
      await pub.query('SELECT set_config($1, $2, true)', ['statement_timeout', `${Math.max(1, Math.round(p.statementTimeoutMs))}ms`]);
    const t0 = Date.now();
    const { rows } = await pub.query<{
      r: { id: string; values: Record<string, [string, string]>; lockWaitMs: string; computeMs: string };
    }>('SELECT syncguard.probe_buckets($1, $2, $3, $4, $5) AS r', [p.table.schema, p.table.table, p.buckets, p.target, p.subscription]);
    const r = one(rows, 'syncguard.probe_buckets').r;
    await pub.query('COMMIT');
    const holdMs = Date.now() - t0 - Number(r.lockWaitMs);
    const lsn = await insertLsn(pub);
    return {
      id: String(r.id),
      values: parseValues(r.values),
      lockWaitMs: Number(r.lockWaitMs),
      computeMs: Number(r.computeMs),
      holdMs,
      lsn,
    };
  } catch (err) {
    await pub.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** A marker (a probe that asks nothing) on the publisher; its answer on the subscriber is a barrier. */
export async function sendMarker(pub: Client, target: string, subscription: string): Promise<string> {
  const { rows } = await pub.query<{ id: string }>('SELECT syncguard.probe_marker($1, $2)::text AS id', [target, subscription]);
  return one(rows, 'syncguard.probe_marker').id;
}

/** Deletes this publisher's probes older than an hour. */
export async function cleanupProbes(pub: Client): Promise<number> {
  const { rows } = await pub.query<{ n: number }>('SELECT syncguard.probe_cleanup() AS n');
  return Number(rows[0]?.n ?? 0);
}

export interface ProbeAnswer {
  readonly ok: boolean;
  /** The answer as the subscriber wrote it: bucket values, a row list, or a repair's outcomes. */
  readonly answer: unknown;
  readonly error: string | null;
  readonly computeMs: number | null;
}

/** A 'buckets' probe's answer as bucket values. */
export const bucketValues = (a: ProbeAnswer): Map<string, BucketValue> => parseValues(a.answer as Record<string, [string, string]> | null);

/** The subscriber's answers to some probes of one publisher (absent: not applied yet). */
export async function readAnswers(sub: Client, origin: string, ids: readonly string[]): Promise<Map<string, ProbeAnswer>> {
  const { rows } = await sub.query<{
    r: Record<string, { ok: boolean; answer: unknown; error: string | null; computeMs: string | null }>;
  }>('SELECT syncguard.probe_results($1, $2) AS r', [origin, ids]);
  const r = one(rows, 'syncguard.probe_results').r;
  return new Map(
    Object.entries(r).map(([id, a]) => [
      id,
      { ok: a.ok, answer: a.answer, error: a.error, computeMs: a.computeMs === null ? null : Number(a.computeMs) },
    ]),
  );
}
