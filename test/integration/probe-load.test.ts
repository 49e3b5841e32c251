// Verify under continuous writes (issue 8): one writer at 200+ transactions/s over random keys
// of every bucket of a 100k-row table, each transaction also updating one row of a 5-row table,
// with verify running back to back for 60 s and the subscription disabled for 10 s in the middle.
// Probes resolve the buckets the writer keeps dirty, so the runs give a verdict: in sync, with
// full coverage, and never diverged. Then: drift injected into a bucket that is being written is
// found, exactly there; and probes on equal data under heavy writes never differ.

import { describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import { DEFAULT_PROBE_BUDGET } from '../../functions/core/probe-plan.js';
import { Deadline } from '../../functions/db/deadline.js';
import { nodeStatus } from '../../functions/db/status.js';
import { emptyStats, resolveByProbes } from '../../functions/flows/probes.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { percentile, startWriter } from '../support/load.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const BIG = 'public.accounts';
const HOT = 'public.branches';
const ROWS = 100_000;
const SPARE = 1000; // keys the writer never touches: room for drift that replication cannot overwrite

const ctx = usePair({
  label: 'probeload',
  tables: [BIG, HOT],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${BIG} (id int PRIMARY KEY, v bigint NOT NULL, note text);
                     CREATE TABLE ${HOT} (id int PRIMARY KEY, n bigint NOT NULL)`);
    await pair.pub.query(`INSERT INTO ${BIG} SELECT i, 0, md5(i::text) FROM generate_series(1, ${ROWS}) i;
                          INSERT INTO ${HOT} SELECT i, 0 FROM generate_series(1, 5) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, BIG, { bucketSize: 1000 });
    await register(pub, sub, HOT);
    await settle(pub);
    await settle(sub);
  },
});

const writer = () => startWriter(ctx.pair.publisherDsn, { big: BIG, hot: HOT, maxKey: ROWS, spare: SPARE, hotRows: 5, perSecond: 230 });

async function applyErrors(): Promise<number> {
  const { rows } = await ctx.pair.sub.query<{ n: string }>(
    'SELECT apply_error_count + sync_error_count AS n FROM pg_stat_subscription_stats WHERE subname = $1',
    [ctx.pair.name],
  );
  return Number(rows[0]?.n ?? 0);
}

describe('verify under continuous writes', () => {
  it('gives in_sync with full coverage in 90 % of back-to-back runs over 60 s, incomplete while the subscription is disabled', async () => {
    const errorsBefore = await applyErrors();
    const w = await writer();
    const start = Date.now();
    let disabledAt = Number.POSITIVE_INFINITY;
    let enabledAt = Number.POSITIVE_INFINITY;
    const pauser = (async () => {
      await new Promise((r) => setTimeout(r, 25_000));
      disabledAt = Date.now();
      await ctx.pair.sub.query(`ALTER SUBSCRIPTION ${ctx.pair.name} DISABLE`);
      await new Promise((r) => setTimeout(r, 10_000));
      await ctx.pair.sub.query(`ALTER SUBSCRIPTION ${ctx.pair.name} ENABLE`);
      enabledAt = Date.now();
    })();
    const runs: { from: number; to: number; status: string; coverage: number; ms: number; reasons: readonly string[] }[] = [];
    try {
      while (Date.now() - start < 60_000) {
        const from = Date.now();
        const r = await verifyPair(ctx.pub, ctx.sub, { deadline: Deadline.after(8000) });
        runs.push({ from, to: Date.now(), status: r.status, coverage: r.coveragePct, ms: r.durationMs, reasons: r.reasons });
        if (r.status === 'diverged') throw new Error(`false alarm: ${JSON.stringify(r.mismatches)}`);
      }
    } finally {
      await pauser;
    }
    const load = await w.stop();
    expect(load.transactions / load.seconds).toBeGreaterThanOrEqual(200);

    const paused = runs.filter((r) => r.from >= disabledAt && r.to <= enabledAt);
    const outside = runs.filter((r) => r.to < disabledAt || r.from > enabledAt);
    expect(paused.length).toBeGreaterThan(0);
    for (const r of paused) expect(r.status).toBe('incomplete');
    const good = outside.filter((r) => r.status === 'in_sync' && r.coverage >= 99);
    const summary = JSON.stringify(outside.filter((r) => r.status !== 'in_sync').map((r) => r.reasons));
    expect(outside.length).toBeGreaterThan(10);
    expect(good.length / outside.length, summary).toBeGreaterThanOrEqual(0.9);
    expect(await applyErrors()).toBe(errorsBefore);
  });

  it('finds drift injected into a bucket that is being written, exactly there, and nothing else', async () => {
    const w = await writer();
    try {
      await new Promise((r) => setTimeout(r, 1000));
      // bucket 0 of the hot table is written by every transaction; this extra row is not
      await ctx.pair.sub.query(`INSERT INTO ${HOT} VALUES (6, 0)`);
      // a spare key of the big table: inside a bucket the writer keeps dirty
      await ctx.pair.sub.query(`UPDATE ${BIG} SET note = 'drift' WHERE id = ${7 * SPARE}`);
      const r = await verifyPair(ctx.pub, ctx.sub, { deadline: Deadline.after(15_000) });
      expect(r.status).toBe('diverged');
      expect(r.mismatches.map((m) => `${m.table}#${m.bucket}:${m.how}`).sort()).toEqual([`${BIG}#7:probe`, `${HOT}#0:probe`]);
      await ctx.pair.sub.query(`DELETE FROM ${HOT} WHERE id = 6; UPDATE ${BIG} SET note = md5(id::text) WHERE id = ${7 * SPARE}`);
      const again = await verifyPair(ctx.pub, ctx.sub, { deadline: Deadline.after(15_000) });
      expect(again.mismatches).toEqual([]);
      expect(again.status).toBe('in_sync');
    } finally {
      await w.stop();
    }
  });

  it('never sees a difference on equal data in many probes under heavy writes, and always sees a one-row one', async () => {
    const w = await writer();
    const [pubStatus, subStatus] = [await nodeStatus(ctx.pub), await nodeStatus(ctx.sub)];
    const all = Array.from({ length: ROWS / 1000 + 1 }, (_, i) => ({ bucket: String(i), rows: 1000 }));
    const probe = async () => {
      const stats = emptyStats();
      const out = await resolveByProbes(
        ctx.pub,
        ctx.sub,
        [{ table: parseTableName(BIG), scheme: 'int', subscription: ctx.pair.name, targets: all, tableRows: ROWS }],
        { origin: pubStatus.nodeId, target: subStatus.nodeId, deadline: Deadline.after(30_000), budget: DEFAULT_PROBE_BUDGET },
        stats,
      );
      return { outcomes: out.get(parseTableName(BIG)) ?? [], stats };
    };
    try {
      let probes = 0;
      const holds: number[] = [];
      // passes over every bucket until 60 probes have run (how many rows one probe covers adapts
      // to how fast the nodes hash)
      for (let i = 0; i < 12 && (i < 6 || probes < 60); i++) {
        const { outcomes, stats } = await probe();
        probes += stats.probes;
        holds.push(...stats.holdMs);
        expect(outcomes.filter((o) => o.state !== 'equal')).toEqual([]);
      }
      expect(probes).toBeGreaterThanOrEqual(60);
      expect(percentile(holds, 50)).toBeLessThan(25);
      await ctx.pair.sub.query(`UPDATE ${BIG} SET note = 'one row' WHERE id = ${42 * SPARE}`);
      const { outcomes } = await probe();
      expect(outcomes.filter((o) => o.state !== 'equal').map((o) => [o.bucket, o.state])).toEqual([['42', 'differ']]);
    } finally {
      await ctx.pair.sub.query(`UPDATE ${BIG} SET note = md5(id::text) WHERE id = ${42 * SPARE}`);
      await w.stop();
    }
  });
});
