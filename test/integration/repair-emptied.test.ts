// A bucket emptied on the subscriber is repairable (issue 17, item 23), against real replication:
// TRUNCATE on the subscriber, then one repair of an int-bucketed bucket with 999 missing rows. The
// repair request is sent in parts that each hold writers back within the 50 ms promise, and the
// bucket ends equal; a part that cannot fit says so for what it is, not as a hash-bucketed table.

import { describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import { Deadline } from '../../functions/db/deadline.js';
import { applyPlan, planBucket } from '../../functions/flows/repair.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.emptied';

const ctx = usePair({
  label: 'remptied',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, a text, b text, c numeric, d timestamptz, e jsonb)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, repeat(md5(i::text), 6), md5('b' || i), i * 1.5, now(), jsonb_build_object('i', i, 'k', repeat('x', 50))
                            FROM generate_series(1, 999) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 1000 });
    await settle(pub);
    await settle(sub);
  },
});

describe('item 23: a bucket emptied on the subscriber', () => {
  it('is repaired in one run, within the hold promise', async () => {
    await ctx.pair.sub.query(`TRUNCATE ${T}`);
    await settle(ctx.sub);
    const { plan } = await planBucket(ctx.pub, ctx.sub, parseTableName(T), '0', { pair: 'e' });
    expect(plan.rowCount).toBe(999);
    const o = await applyPlan(ctx.pub, ctx.sub, { id: 'emptied', ...plan }, { deadline: Deadline.after(60_000) });
    expect(o.counts).toEqual({ applied: 999 });
    expect(o.bucketAfter).toBe('equal');
    expect(o.holdMs).toBeLessThanOrEqual(50);
    const { rows } = await ctx.pair.sub.query(`SELECT count(*)::int AS n FROM ${T}`);
    expect(rows).toEqual([{ n: 999 }]);
  });
});
