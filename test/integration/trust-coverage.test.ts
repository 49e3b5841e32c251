// Issue 7, A1 and A4: a diverged bucket never hides behind a coverage figure, and a full re-sweep
// revisits integer buckets that became empty behind the triggers' back.

import { describe, expect, it } from 'vitest';
import { plainNode } from '../../dev/plain-node.js';
import { TableRef } from '../../functions/core/identifiers.js';
import { Deadline } from '../../functions/db/deadline.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { cli } from '../support/cli.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const HOT = 'public.hot';
const EMPTIED = 'public.emptied';
// a getter: a fresh deadline at each use
const quick = {
  get deadline() {
    return Deadline.after(20_000);
  },
};

const ctx = usePair({
  label: 'trust_cov',
  tables: [HOT, EMPTIED],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${HOT} (id int PRIMARY KEY, v int NOT NULL);
                     CREATE TABLE ${EMPTIED} (id int PRIMARY KEY, v text)`);
    await pair.pub.query(`INSERT INTO ${HOT} SELECT i, 0 FROM generate_series(1, 3000) i;
                          INSERT INTO ${EMPTIED} SELECT i, 'v' || i FROM generate_series(1, 5000) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, HOT, { bucketSize: 100 }); // 31 buckets: one skipped leaves 96.8 %
    await register(pub, sub, EMPTIED, { bucketSize: 1000 });
    await settle(pub);
    await settle(sub);
  },
});

describe('coverage', () => {
  it('does not call a table in sync while a hot bucket hides a local write on the subscriber', async () => {
    const until = Date.now() + 12_000;
    const writer = (async () => {
      const c = await plainNode(ctx.pair.publisherDsn);
      try {
        while (Date.now() < until) {
          await c.query(`UPDATE ${HOT} SET v = v + 1 WHERE id = 500`);
          await new Promise((r) => setTimeout(r, 10));
        }
      } finally {
        await c.close();
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 500));
      // an application changes another row of the same bucket on the subscriber
      await ctx.pair.sub.query(`UPDATE ${HOT} SET v = -1 WHERE id = 560`);
      for (let i = 0; i < 3; i++) {
        const r = await verifyPair(ctx.pub, ctx.sub, { ...quick, table: TableRef.of('public', 'hot') });
        expect(r.status).not.toBe('in_sync');
        if (r.status === 'incomplete') {
          expect(r.reasons.join('\n')).toMatch(
            /public\.hot: bucket 5 holds local writes on the subscriber and could not be compared|candidate/,
          );
        }
      }
    } finally {
      await writer;
      await ctx.pair.sub.query(`UPDATE ${HOT} SET v = 0 WHERE id = 560`); // as on the publisher
    }
  });

  it('applies the minimum coverage per table, not over all tables together', async () => {
    await ctx.pair.catchUp();
    await settle(ctx.pub);
    await settle(ctx.sub);
    // one of the 6 buckets of a small table cannot be compared (never computed on the subscriber)
    await ctx.sub.query(
      "UPDATE syncguard.bucket SET row_count = NULL WHERE bucket = 1 AND reg_id = (SELECT reg_id FROM syncguard.registrations WHERE table_name = 'emptied')",
    );
    try {
      // a probe may hold writers back for 0.01 ms only: no bucket fits, so none is probed
      const r = await verifyPair(ctx.pub, ctx.sub, { ...quick, minCoveragePct: 95, probeHoldMs: 0.01 });
      expect(r.coveragePct).toBeGreaterThan(95); // over both tables together
      expect(r.status).toBe('incomplete');
      expect(r.reasons).toContain('public.emptied: coverage 83.33 % is below the minimum 95 %');
      expect(r.reasons).toContainEqual(
        expect.stringMatching(/^public\.emptied: bucket 1 not compared: the bucket holds ~\d+ rows; probing it would hold writers back/),
      );
      // with probes it is compared, and equal
      expect((await verifyPair(ctx.pub, ctx.sub, quick)).status).toBe('in_sync');
    } finally {
      await ctx.sub.query("SELECT syncguard.recompute(reg_id, '{1}') FROM syncguard.registrations WHERE table_name = 'emptied'");
    }
  });

  it('revisits a bucket emptied with the triggers disabled in a full re-sweep, and finds it', async () => {
    await ctx.pair.sub.query(`ALTER TABLE ${EMPTIED} DISABLE TRIGGER syncguard_delete`);
    await ctx.pair.sub.query(`DELETE FROM ${EMPTIED} WHERE id BETWEEN 2000 AND 2999`);
    await ctx.pair.sub.query(`ALTER TABLE ${EMPTIED} ENABLE ALWAYS TRIGGER syncguard_delete`);
    for (const dsn of [ctx.pair.publisherDsn, ctx.pair.subscriberDsn]) {
      expect((await cli('drain', '--dsn', dsn, '--full-resweep', '--json')).code).toBe(0);
    }
    const r = await verifyPair(ctx.pub, ctx.sub, { ...quick, table: TableRef.of('public', 'emptied') });
    expect(r.status).toBe('diverged');
    expect(r.mismatches.map((m) => [m.bucket, m.publisher.rows, m.subscriber.rows])).toEqual([['2', '1000', '0']]);
  });
});
