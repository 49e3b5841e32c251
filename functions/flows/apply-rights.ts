// Before anything syncguard writes to a replicated table can reach a subscriber: may that
// subscription's owner apply it? (issue 17 item A1; core/apply-rights.ts decides.) A write it may
// not apply stops the subscription in an error loop, whatever syncguard's triggers do, so:
//   - the probe route (flows/probe-route.ts) adds syncguard.probe to no publication, and refreshes
//     no subscription, whose owner could not apply it, and verify, inspect and repair send no probe
//     while any subscription carrying syncguard.probe could not apply it;
//   - install and register refuse to write the publisher's logged syncguard tables while a
//     subscription that carries them (FOR ALL TABLES) could not apply them.

import { type ApplyCheck, applyCheckText, checkApplyRights } from '../core/apply-rights.js';
import { IncompatibleError } from '../core/errors.js';
import { applyFacts, subscriptionsCarrying } from '../db/apply-rights.js';
import type { Client } from '../db/connect.js';
import { serverVersionNum } from '../db/install.js';
import { type ProbeRoute, probeRoute } from '../db/probe.js';

/** Whether this subscription's owner can apply syncguard's writes (ok for a subscription that does not exist here). */
export async function subscriptionApplyCheck(sub: Client, subscription: string, route?: ProbeRoute): Promise<ApplyCheck> {
  const r = route ?? (await probeRoute(sub));
  const major = Math.floor((await serverVersionNum(sub)) / 10000);
  let facts: Awaited<ReturnType<typeof applyFacts>>;
  try {
    facts = await applyFacts(sub, subscription, major, {
      installer: r.installer,
      applyRole: r.applyRole,
      applyRoleExists: r.applyRoleExists,
    });
  } catch (e) {
    if (!(e instanceof IncompatibleError)) throw e;
    return {
      ok: false,
      reason: e.message,
      fix: ['connect to the subscriber as a role that may read pg_subscription (PostgreSQL 13: a superuser)'],
    };
  }
  return facts === null ? { ok: true } : checkApplyRights(facts);
}

/**
 * Refuses, before the publisher's logged syncguard tables are written (`what`: install,
 * register, unregister), when a subscription that carries them (a FOR ALL TABLES publication)
 * could not apply the write.
 */
export async function requireApplicable(sub: Client, tables: readonly string[], what: string): Promise<void> {
  const subs = await subscriptionsCarrying(sub, tables);
  if (subs.length === 0) return;
  const route = await probeRoute(sub);
  for (const s of subs) {
    const c = await subscriptionApplyCheck(sub, s, route);
    if (!c.ok) {
      throw new IncompatibleError(
        `${what} would write syncguard.${tables.join(', syncguard.')} on the publisher, which subscription ${s} replicates (a FOR ALL TABLES publication), and ${applyCheckText(c)}; then run ${what} again`,
      );
    }
  }
}
