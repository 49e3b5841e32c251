// The probe's route: syncguard.probe must travel in the same subscription as each registered
// table (order holds within one subscription only), and the subscriber needs its trigger.
//   probeReach:       which tables probes can reach now, and why not for the others.
//   ensureProbeRoute: what install and register do: add syncguard.probe to a publication of each
//                     subscription that carries a registered table, then refresh that subscription
//                     without copying data, but only when the refresh would change nothing else
//                     (a refresh without copy would skip the initial copy of any other table the
//                     user added to the publication). When the role may not, it says what to run.
// Neither routes a probe to a subscription whose owner could not apply it (flows/apply-rights.ts):
// that would stop the subscription. They say why, and the grant that fixes it.

import { escapeIdentifier } from 'pg';
import { applyCheckText } from '../core/apply-rights.js';
import { tableFromText, tableText } from '../core/identifiers.js';
import { subscriptionsOf } from '../db/barrier.js';
import type { Client } from '../db/connect.js';
import { probeRoute } from '../db/probe.js';
import { subscriptionApplyCheck } from './apply-rights.js';

export type ProbeReach = { readonly ok: true; readonly subscription: string } | { readonly ok: false; readonly reason: string };

const fix = 'syncguard install (on the pair) adds it, or see docs/verification.md "Where probes cannot reach"';

/** For each table, the subscription probes travel in, or why probes cannot reach it. */
export async function probeReach(
  sub: Client,
  tables: readonly string[],
): Promise<{ reach: Map<string, ProbeReach>; target: string; warnings: string[] }> {
  const reach = new Map<string, ProbeReach>();
  const route = await probeRoute(sub);
  const { subscriptions } = await subscriptionsOf(sub, tables.map(tableFromText));
  // a probe row reaches every subscription that carries syncguard.probe: one whose owner could not
  // apply it would stop, so then no probe is sent at all
  const blocked = new Map<string, string>();
  for (const name of new Set([...subscriptions.map((s) => s.name), ...route.subscriptions.keys()])) {
    const c = await subscriptionApplyCheck(sub, name, route);
    if (!c.ok) blocked.set(name, applyCheckText(c));
  }
  const carrier = [...route.subscriptions.keys()].find((n) => blocked.has(n));
  const untrusted =
    route.foreign.length > 0
      ? `syncguard's replicated tables have ${route.foreign.join(', ')}, which syncguard did not create (the owner of those tables may add them, and a trigger could rewrite a probe before syncguard's answers it); drop them`
      : null;
  for (const s of subscriptions) {
    const state = route.subscriptions.get(s.name);
    const reason = !route.table
      ? 'the subscriber has no syncguard.probe table; run syncguard install on the pair'
      : untrusted !== null
        ? untrusted
        : blocked.has(s.name)
          ? (blocked.get(s.name) as string)
          : carrier !== undefined
            ? (blocked.get(carrier) as string)
            : route.trigger !== 'A'
              ? `the subscriber's probe trigger is ${route.trigger === null ? 'missing' : `not ENABLE ALWAYS (tgenabled ${route.trigger})`}; run syncguard install on the subscriber`
              : state === undefined
                ? `syncguard.probe is not in subscription ${s.name}; ${fix}`
                : state !== 'r'
                  ? `syncguard.probe is not ready in subscription ${s.name} (sync state ${state})`
                  : null;
    for (const t of s.tables) reach.set(t, reason === null ? { ok: true, subscription: s.name } : { ok: false, reason });
  }
  const warnings =
    route.subscriptions.size > 1
      ? [
          `syncguard.probe is carried by ${route.subscriptions.size} subscriptions (${[...route.subscriptions.keys()].join(', ')}); each probe is answered only through the subscription of its table, and the other copies are dropped (logged as delete_missing conflicts when they are cleaned up)`,
        ]
      : [];
  return { reach, target: route.nodeId, warnings };
}

const code = (err: unknown): string => String((err as { code?: unknown }).code ?? '');
const INSUFFICIENT_PRIVILEGE = '42501';

/** Adds syncguard.probe to the subscriptions of the registered tables where it is missing; returns notes. */
export async function ensureProbeRoute(pub: Client, sub: Client, tables: readonly string[]): Promise<string[]> {
  if (tables.length === 0) return [];
  const notes: string[] = [];
  const { subscriptions } = await subscriptionsOf(sub, tables.map(tableFromText));
  const route = await probeRoute(sub);
  for (const s of subscriptions) {
    if (route.subscriptions.get(s.name) === 'r') continue;
    const rights = await subscriptionApplyCheck(sub, s.name, route);
    if (!rights.ok) {
      notes.push(
        `syncguard.probe is not added to subscription ${s.name}, and probes do not travel with its tables: ${applyCheckText(rights)}`,
      );
      continue;
    }
    const { rows: subRows } = await sub.query<{ pubs: string[] }>(
      'SELECT subpublications AS pubs FROM pg_subscription WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())',
      [s.name],
    );
    const pubs = subRows[0]?.pubs ?? [];
    // a publication of this subscription that already publishes one of its tables
    const { rows: carrying } = await pub.query<{ pubname: string; probe: boolean }>(
      `SELECT p.pubname, EXISTS (SELECT 1 FROM pg_publication_tables t WHERE t.pubname = p.pubname
                                    AND t.schemaname = 'syncguard' AND t.tablename = 'probe') AS probe
         FROM pg_publication p
        WHERE p.pubname = ANY($1)
          AND EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) x(s, n),
                             -- a partitioned table is published as its root or as its leaves
                             LATERAL (SELECT to_regclass(format('%I.%I', x.s, x.n)) AS relid
                                      UNION SELECT m.relid FROM pg_partition_tree(to_regclass(format('%I.%I', x.s, x.n))) m
                                      UNION SELECT a.relid FROM pg_partition_ancestors(to_regclass(format('%I.%I', x.s, x.n))) a) m
                             JOIN pg_class c ON c.oid = m.relid JOIN pg_namespace ns ON ns.oid = c.relnamespace
                             JOIN pg_publication_tables t ON t.schemaname = ns.nspname AND t.tablename = c.relname
                       WHERE t.pubname = p.pubname)
        ORDER BY p.pubname`,
      [pubs, s.tables.map((t) => tableFromText(t).schema), s.tables.map((t) => tableFromText(t).table)],
    );
    const chosen = carrying.find((c) => c.probe) ?? carrying[0];
    if (chosen === undefined) continue;
    const alter = `ALTER PUBLICATION ${escapeIdentifier(chosen.pubname)} ADD TABLE syncguard.probe`;
    const refresh = `ALTER SUBSCRIPTION ${escapeIdentifier(s.name)} REFRESH PUBLICATION WITH (copy_data = false)`;
    if (!chosen.probe) {
      try {
        await pub.query(alter);
        notes.push(`added syncguard.probe to publication ${chosen.pubname} on the publisher`);
      } catch (err) {
        if (code(err) !== INSUFFICIENT_PRIVILEGE) throw err;
        notes.push(
          `probes need syncguard.probe in publication ${chosen.pubname}; as its owner run on the publisher: ${alter}; then on the subscriber: ${refresh}`,
        );
        continue;
      }
    }
    // refresh only when syncguard.probe is the one difference between publication and subscription
    const { rows: published } = await pub.query<{ schema: string; table: string }>(
      'SELECT DISTINCT schemaname AS schema, tablename AS table FROM pg_publication_tables WHERE pubname = ANY($1)',
      [pubs],
    );
    const { rows: subscribed } = await sub.query<{ schema: string; table: string }>(
      `SELECT n.nspname AS schema, c.relname AS table FROM pg_subscription_rel r
         JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`,
      [s.name],
    );
    const have = new Set(subscribed.map(tableText));
    const want = new Set(published.map(tableText));
    const others = [...want].filter((n) => n !== 'syncguard.probe' && !have.has(n));
    const gone = [...have].filter((n) => !want.has(n));
    if (others.length > 0 || gone.length > 0) {
      notes.push(
        `subscription ${s.name} also has other pending publication changes (${[...others, ...gone].slice(0, 5).join(', ')}); refresh it yourself (with copy_data as those tables need) to let probes through`,
      );
      continue;
    }
    try {
      await sub.query(refresh);
      notes.push(`refreshed subscription ${s.name} (copy_data = false): probes now travel with its tables`);
    } catch (err) {
      if (code(err) !== INSUFFICIENT_PRIVILEGE) throw err;
      notes.push(`probes need subscription ${s.name} refreshed; as its owner run on the subscriber: ${refresh}`);
    }
  }
  return notes;
}
