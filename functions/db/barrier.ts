// The replication barrier (DESIGN.md): everything the publisher committed before LSN L is
// visible on the subscriber once the subscription's slot has confirmed_flush_lsn >= L. Read L with
// pg_current_wal_insert_lsn(), not pg_current_wal_lsn(). A barrier is only trusted while the
// subscription is enabled, every table is in state r, and apply errors are not rising; any of
// these failing, or a timeout, gives no barrier and so no data verdict.

import type { Client } from './connect.js';

export interface SubscriptionInfo {
  readonly name: string;
  readonly slot: string | null;
  readonly enabled: boolean;
}

export type BarrierResult =
  | { readonly ok: true; readonly lsn: string; readonly waitedMs: number }
  | { readonly ok: false; readonly failure: string };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The subscriber database's subscription to this publisher (its publications exist there). */
export async function findSubscription(pub: Client, sub: Client): Promise<SubscriptionInfo | string> {
  const { rows } = await sub.query<{ subname: string; slot: string | null; enabled: boolean; pubs: string[] }>(
    `SELECT subname, subslotname AS slot, subenabled AS enabled, subpublications AS pubs FROM pg_subscription
      WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY subname`,
  );
  if (rows.length === 0) return 'the subscriber database has no subscription';
  const { rows: pubs } = await pub.query<{ pubname: string }>('SELECT pubname FROM pg_publication');
  const known = new Set(pubs.map((p) => p.pubname));
  const match = rows.find((r) => r.pubs.some((p) => known.has(p)));
  if (match === undefined) {
    return `no subscription of the subscriber (${rows.map((r) => r.subname).join(', ')}) names a publication of this publisher; is this the right pair?`;
  }
  return { name: match.subname, slot: match.slot, enabled: match.enabled };
}

async function applyErrors(sub: Client, name: string): Promise<number | null> {
  const { rows: v } = await sub.query<{ v: number }>("SELECT current_setting('server_version_num')::int AS v");
  if ((v[0]?.v ?? 0) < 150000) return null; // pg_stat_subscription_stats arrived in 15
  const { rows } = await sub.query<{ n: string }>(
    'SELECT apply_error_count + sync_error_count AS n FROM pg_stat_subscription_stats WHERE subname = $1',
    [name],
  );
  return rows[0] === undefined ? 0 : Number(rows[0].n);
}

/** Checks the subscription's health, reads L on the publisher and waits until the slot confirmed it. */
export async function waitForBarrier(pub: Client, sub: Client, timeoutMs: number, lsn?: string): Promise<BarrierResult> {
  const s = await findSubscription(pub, sub);
  if (typeof s === 'string') return { ok: false, failure: s };
  if (!s.enabled) return { ok: false, failure: `subscription ${s.name} is disabled` };
  if (s.slot === null) return { ok: false, failure: `subscription ${s.name} has no replication slot` };
  const { rows: notReady } = await sub.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
      WHERE s.subname = $1 AND r.srsubstate <> 'r'`,
    [s.name],
  );
  if (Number(notReady[0]?.n) > 0)
    return { ok: false, failure: `${notReady[0]?.n} table(s) of subscription ${s.name} are not in sync state r yet` };
  const { rows: slot } = await pub.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [s.slot]);
  if (slot.length === 0)
    return { ok: false, failure: `replication slot ${s.slot} of subscription ${s.name} does not exist on the publisher` };

  const errorsBefore = await applyErrors(sub, s.name);
  const target = lsn ?? (await pub.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]?.l;
  const start = Date.now();
  for (;;) {
    const { rows } = await pub.query<{ ok: boolean; at: string | null }>(
      'SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok, confirmed_flush_lsn::text AS at FROM pg_replication_slots WHERE slot_name = $1',
      [s.slot, target],
    );
    if (rows[0]?.ok) break;
    if (Date.now() - start > timeoutMs) {
      return {
        ok: false,
        failure: `barrier timeout after ${timeoutMs} ms: slot ${s.slot} confirmed ${rows[0]?.at ?? 'nothing'}, needed ${target}`,
      };
    }
    const errorsNow = await applyErrors(sub, s.name);
    if (errorsBefore !== null && errorsNow !== null && errorsNow > errorsBefore) {
      return { ok: false, failure: `subscription ${s.name} is failing to apply changes (apply/sync error count rose to ${errorsNow})` };
    }
    await sleep(25);
  }
  return { ok: true, lsn: target as string, waitedMs: Date.now() - start };
}
