// The replication barrier (docs/verification.md): everything the publisher committed before LSN L is
// visible on the subscriber once the subscription's slot has confirmed_flush_lsn >= L. Read L with
// pg_current_wal_insert_lsn(), not pg_current_wal_lsn(). Each monitored table is mapped to the
// subscription that replicates it (pg_subscription_rel), so with several subscriptions every one
// involved is checked and waited for, never just the first by name. A barrier is only trusted
// while each of them is enabled, has a logical slot in this publisher database, every table is in
// state r, and apply errors are not rising; any of these failing, or a timeout, gives no barrier
// and so no data verdict.

import { setTimeout as sleep } from 'node:timers/promises';
import { TableRef } from '../core/identifiers.js';
import type { Client } from './connect.js';

export interface SubscriptionInfo {
  readonly name: string;
  readonly slot: string | null;
  readonly enabled: boolean;
  readonly notReady: number;
  /** The monitored tables it replicates. */
  readonly tables: readonly TableRef[];
}

export type BarrierResult =
  | {
      readonly ok: true;
      readonly lsn: string;
      readonly waitedMs: number;
      /** Tables left out because their own subscription cannot give a barrier: why. */
      readonly excluded: ReadonlyMap<TableRef, string>;
    }
  | { readonly ok: false; readonly failure: string };

/**
 * The subscriptions of the subscriber database that replicate the given tables, and the tables
 * that none of them replicates.
 */
export async function subscriptionsOf(
  sub: Client,
  tables: readonly TableRef[],
): Promise<{ subscriptions: SubscriptionInfo[]; unsubscribed: TableRef[] }> {
  const { rows } = await sub.query<{
    schema: string;
    table: string;
    subname: string | null;
    slot: string | null;
    enabled: boolean;
    state: string;
  }>(
    `SELECT t.schema, t.table, s.subname, s.subslotname AS slot, s.subenabled AS enabled, sr.srsubstate AS state
       FROM unnest($1::text[], $2::text[]) t(schema, "table")
       -- a partitioned table is subscribed as its root or as its leaves; a partition as itself or its root
       LEFT JOIN pg_subscription_rel sr ON sr.srrelid IN (
              SELECT to_regclass(format('%I.%I', t.schema, t."table"))
              UNION SELECT p.relid FROM pg_partition_tree(to_regclass(format('%I.%I', t.schema, t."table"))) p
              UNION SELECT a.relid FROM pg_partition_ancestors(to_regclass(format('%I.%I', t.schema, t."table"))) a)
       LEFT JOIN pg_subscription s ON s.oid = sr.srsubid
            AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      ORDER BY s.subname`,
    [tables.map((t) => t.schema), tables.map((t) => t.table)],
  );
  const subs = new Map<string, { slot: string | null; enabled: boolean; notReady: number; tables: TableRef[] }>();
  const unsubscribed: TableRef[] = [];
  const subscribed = new Set(rows.filter((r) => r.subname !== null).map((r) => TableRef.of(r.schema, r.table)));
  for (const r of rows) {
    const t = TableRef.of(r.schema, r.table);
    if (r.subname === null) {
      // one row per table when nothing subscribes it (a partition tree may have several)
      if (!subscribed.has(t) && !unsubscribed.includes(t)) unsubscribed.push(t);
      continue;
    }
    const s = subs.get(r.subname) ?? { slot: r.slot, enabled: r.enabled, notReady: 0, tables: [] };
    if (r.state !== 'r') s.notReady++;
    if (!s.tables.includes(t)) s.tables.push(t);
    subs.set(r.subname, s);
  }
  return { subscriptions: [...subs].map(([name, s]) => ({ name, ...s })), unsubscribed };
}

/** Said when a wait times out on a subscriber that cannot count apply errors. */
export const NO_ERROR_COUNTS =
  "; this subscriber runs PostgreSQL 13 or 14, which does not count apply errors (pg_stat_subscription_stats arrived in 15), so a subscription failing to apply shows only as this timeout: check the subscriber's server log";

/** Apply and sync errors of these subscriptions so far (null before PostgreSQL 15). */
export async function applyErrors(sub: Client, names: readonly string[]): Promise<number | null> {
  const { rows: v } = await sub.query<{ v: number }>("SELECT current_setting('server_version_num')::int AS v");
  if ((v[0]?.v ?? 0) < 150000) return null; // pg_stat_subscription_stats arrived in 15
  const { rows } = await sub.query<{ n: string | null }>(
    'SELECT sum(apply_error_count + sync_error_count) AS n FROM pg_stat_subscription_stats WHERE subname = ANY($1)',
    [names],
  );
  return Number(rows[0]?.n ?? 0);
}

/** Why a subscription cannot give a barrier (disabled, no slot, tables not ready, not this publisher's slot), or null when it can. */
export async function unhealthy(pub: Client, s: SubscriptionInfo): Promise<string | null> {
  if (!s.enabled) return `subscription ${s.name} is disabled`;
  if (s.slot === null) return `subscription ${s.name} has no replication slot`;
  if (s.notReady > 0) return `${s.notReady} table(s) of subscription ${s.name} are not in sync state r yet`;
  const { rows } = await pub.query<{ type: string; here: boolean }>(
    'SELECT slot_type AS type, database = current_database() AS here FROM pg_replication_slots WHERE slot_name = $1',
    [s.slot],
  );
  const slot = rows[0];
  if (slot === undefined)
    return `replication slot ${s.slot} of subscription ${s.name} does not exist on the publisher; is this the right pair?`;
  if (slot.type !== 'logical' || !slot.here) {
    return `replication slot ${s.slot} of subscription ${s.name} is not a logical slot of this publisher database; is this the right pair?`;
  }
  return null;
}

/**
 * Checks the health of every subscription that replicates `tables`, reads L on the publisher (or
 * takes the given one) and waits until each healthy one's slot confirmed it. With `exclude`, the
 * tables of an unhealthy subscription are left out (and say why) while the others get their
 * barrier; without it, or when no subscription is healthy, there is no barrier at all.
 */
export async function waitForBarrier(
  pub: Client,
  sub: Client,
  tables: readonly TableRef[],
  timeoutMs: number,
  lsn?: string,
  exclude = false,
): Promise<BarrierResult> {
  const all = (await subscriptionsOf(sub, tables)).subscriptions;
  if (all.length === 0) return { ok: false, failure: 'no subscription of the subscriber database replicates the monitored tables' };
  const excluded = new Map<TableRef, string>();
  const subscriptions: SubscriptionInfo[] = [];
  let firstFailure: string | null = null;
  for (const s of all) {
    const failure = await unhealthy(pub, s);
    if (failure === null) {
      subscriptions.push(s);
      continue;
    }
    if (!exclude) return { ok: false, failure };
    firstFailure ??= failure;
    for (const t of s.tables) excluded.set(t, `no replication barrier: ${failure}`);
  }
  if (firstFailure !== null && subscriptions.length === 0) return { ok: false, failure: firstFailure };
  const names = subscriptions.map((s) => s.name);
  const slots = subscriptions.map((s) => s.slot as string);
  const errorsBefore = await applyErrors(sub, names);
  const target = lsn ?? (await insertLsn(pub));
  const start = Date.now();
  for (;;) {
    const { rows } = await pub.query<{ slot: string; ok: boolean; at: string | null }>(
      'SELECT slot_name AS slot, coalesce(confirmed_flush_lsn >= $2::pg_lsn, false) AS ok, confirmed_flush_lsn::text AS at FROM pg_replication_slots WHERE slot_name = ANY($1)',
      [slots, target],
    );
    const behind = rows.filter((r) => !r.ok);
    if (rows.length === slots.length && behind.length === 0) break;
    if (Date.now() - start > timeoutMs) {
      const b = behind[0];
      const where = b === undefined ? '' : await walsenderPosition(pub, b.slot);
      return {
        ok: false,
        failure: `barrier timeout after ${timeoutMs} ms: slot ${b?.slot ?? slots.join(', ')} confirmed ${b?.at ?? 'nothing'}, needed ${target}${where}${errorsBefore === null ? NO_ERROR_COUNTS : ''}`,
      };
    }
    const errorsNow = await applyErrors(sub, names);
    if (errorsBefore !== null && errorsNow !== null && errorsNow > errorsBefore) {
      return {
        ok: false,
        failure: `subscription ${names.join(', ')} is failing to apply changes (apply/sync error count rose to ${errorsNow})`,
      };
    }
    await sleep(25);
  }
  return { ok: true, lsn: target as string, waitedMs: Date.now() - start, excluded };
}

/** Why replication through these subscriptions has stopped (one is disabled or gone), or null. */
export async function replicationStopped(sub: Client, names: readonly string[]): Promise<string | null> {
  const { rows } = await sub.query<{ subname: string; enabled: boolean }>(
    'SELECT subname, subenabled AS enabled FROM pg_subscription WHERE subname = ANY($1) AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())',
    [names],
  );
  const found = new Map(rows.map((r) => [r.subname, r.enabled]));
  for (const n of names) {
    if (!found.has(n)) return `subscription ${n} no longer exists`;
    if (found.get(n) === false) return `subscription ${n} is disabled`;
  }
  return null;
}

/** The publisher's WAL insert position now: what a barrier waits for (see the top of this file). */
/**
 * Where the WAL a slot waits for stands, for a barrier timeout's message: how far the publisher
 * has flushed it (the walsender sends only flushed WAL) and, where this role may see it
 * (pg_read_all_stats), how far the slot's walsender has sent it.
 */
async function walsenderPosition(pub: Client, slot: string): Promise<string> {
  const { rows } = await pub.query<{ flushed: string; sent: string | null }>(
    `SELECT pg_catalog.pg_current_wal_flush_lsn()::text AS flushed,
            (SELECT r.sent_lsn::text FROM pg_catalog.pg_stat_replication r JOIN pg_catalog.pg_replication_slots s ON s.active_pid = r.pid
              WHERE s.slot_name = $1) AS sent`,
    [slot],
  );
  const r = rows[0];
  if (r === undefined) return '';
  return ` (the publisher has flushed its WAL to ${r.flushed}${r.sent === null ? '' : `, its walsender has sent ${r.sent}`})`;
}

export async function insertLsn(pub: Client): Promise<string> {
  const { rows } = await pub.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l');
  return rows[0]?.l ?? '';
}
