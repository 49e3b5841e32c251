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

import { applyCheckText } from '../core/apply-rights.js';
import { TableRef } from '../core/identifiers.js';
import { subscriptionsOf } from '../db/barrier.js';
import type { Client } from '../db/connect.js';
import { probeRoute } from '../db/probe.js';
import {
  addProbeSql,
  addProbeTo,
  publicationsCarrying,
  publishedTables,
  refreshSql,
  refreshWithoutCopy,
  subscribedTables,
  subscriptionPublications,
} from '../db/probe-route.js';
import { SQLSTATE, sqlstateOf } from '../db/sqlstate.js';
import { subscriptionApplyCheck } from './apply-rights.js';

export type ProbeReach = { readonly ok: true; readonly subscription: string } | { readonly ok: false; readonly reason: string };

/** The table probes travel in. */
const PROBE_TABLE = TableRef.of('syncguard', 'probe');

const fix = 'syncguard install (on the pair) adds it, or see docs/verification.md "Where probes cannot reach"';

/** For each table, the subscription probes travel in, or why probes cannot reach it. */
export async function probeReach(
  sub: Client,
  tables: readonly TableRef[],
): Promise<{ reach: Map<TableRef, ProbeReach>; target: string; warnings: string[] }> {
  const reach = new Map<TableRef, ProbeReach>();
  const route = await probeRoute(sub);
  const { subscriptions } = await subscriptionsOf(sub, tables);
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

/** Adds syncguard.probe to the subscriptions of the registered tables where it is missing; returns notes. */
export async function ensureProbeRoute(pub: Client, sub: Client, tables: readonly TableRef[]): Promise<string[]> {
  if (tables.length === 0) return [];
  const notes: string[] = [];
  const { subscriptions } = await subscriptionsOf(sub, tables);
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
    const pubs = await subscriptionPublications(sub, s.name);
    // a publication of this subscription that already publishes one of its tables
    const carrying = await publicationsCarrying(pub, pubs, s.tables);
    const chosen = carrying.find((c) => c.probe) ?? carrying[0];
    if (chosen === undefined) continue;
    const alter = addProbeSql(chosen.pubname);
    const refresh = refreshSql(s.name);
    if (!chosen.probe) {
      try {
        await addProbeTo(pub, chosen.pubname);
        notes.push(`added syncguard.probe to publication ${chosen.pubname} on the publisher`);
      } catch (err) {
        if (sqlstateOf(err) !== SQLSTATE.insufficientPrivilege) throw err;
        notes.push(
          `probes need syncguard.probe in publication ${chosen.pubname}; as its owner run on the publisher: ${alter}; then on the subscriber: ${refresh}`,
        );
        continue;
      }
    }
    // refresh only when syncguard.probe is the one difference between publication and subscription
    const published = await publishedTables(pub, pubs);
    const subscribed = await subscribedTables(sub, s.name);
    const have = new Set(subscribed);
    const want = new Set(published);
    const others = [...want].filter((t) => t !== PROBE_TABLE && !have.has(t));
    const gone = [...have].filter((t) => !want.has(t));
    if (others.length > 0 || gone.length > 0) {
      notes.push(
        `subscription ${s.name} also has other pending publication changes (${[...others, ...gone]
          .slice(0, 5)
          .map((t) => t.text)
          .join(', ')}); refresh it yourself (with copy_data as those tables need) to let probes through`,
      );
      continue;
    }
    try {
      await refreshWithoutCopy(sub, s.name);
      notes.push(`refreshed subscription ${s.name} (copy_data = false): probes now travel with its tables`);
    } catch (err) {
      if (sqlstateOf(err) !== SQLSTATE.insufficientPrivilege) throw err;
      notes.push(`probes need subscription ${s.name} refreshed; as its owner run on the subscriber: ${refresh}`);
    }
  }
  return notes;
}
