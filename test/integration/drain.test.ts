// The time-boxed drain against real replication: it empties a backlog and says so, stops on
// time and says so, survives being killed mid-batch without losing a mark, notices lost state,
// and a periodic full re-sweep catches changes that bypassed the triggers.

import { spawn } from 'node:child_process';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Client } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { drain } from '../../functions/db/drain.js';
import { nodeStatus } from '../../functions/db/status.js';
import { catalogue, differingBuckets, fromScratch, regId, register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.orders';
const BIG = 'public.big';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ctx = usePair({
  label: 'drain',
  tables: [T, BIG],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, customer text, total numeric, placed timestamptz, meta jsonb);
                     CREATE TABLE ${BIG} (id int PRIMARY KEY, a text, b text, c timestamptz, d jsonb);`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'c' || (i % 97), i * 1.25, timestamptz '2024-01-01' + i * interval '1 min',
                            jsonb_build_object('n', i) FROM generate_series(1, 20000) i`);
    // enough rows that a full sweep takes well over a second
    await pair.pub.query(`INSERT INTO ${BIG} SELECT i, md5(i::text), md5(i::text), now() - i * interval '1 s',
                            jsonb_build_object('i', i, 'x', md5(i::text)) FROM generate_series(1, 500000) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 100 });
    await register(pub, sub, BIG, { bucketSize: 1000 });
  },
});

/** Buckets whose stored value is stale although nothing says so (no dirty mark, already swept). */
async function silentlyStale(c: Client, table: string): Promise<string[]> {
  const id = await regId(c, table);
  const { rows } = await c.query<{ bucket: string }>(
    `SELECT b.bucket::text FROM syncguard.bucket b
       LEFT JOIN syncguard.compute_all($1) f ON f.bucket = b.bucket
      WHERE b.reg_id = $1 AND b.row_count IS NOT NULL
        AND (b.row_count, b.hash_sum) IS DISTINCT FROM (coalesce(f.row_count, 0), coalesce(f.hash_sum, 0))
        AND NOT EXISTS (SELECT 1 FROM syncguard.dirty d WHERE d.reg_id = $1 AND d.bucket = b.bucket)`,
    [id],
  );
  return rows.map((r) => r.bucket);
}

describe('drain', () => {
  beforeEach(async () => {
    await settle(ctx.pub);
    await settle(ctx.sub);
  });

  it('empties a backlog on both sides and reports it caught up', async () => {
    await ctx.pair.pub.query(`UPDATE ${T} SET total = total + 1 WHERE id % 3 = 0`);
    await ctx.pair.catchUp();
    for (const c of [ctx.pub, ctx.sub]) {
      const s = await drain(c, { deadline: Deadline.after(30_000) });
      expect(s).toMatchObject({ stoppedBecause: 'empty', remainingDirty: 0, sweepProgress: 1, oldestDirtyAgeMs: null });
      // multiples of 3 fall in buckets 0..199; bucket 200 holds only id 20000
      expect(s.bucketsRecomputed).toBe(200);
      expect(s.rowsHashed).toBe(19_999);
    }
    expect(differingBuckets(await catalogue(ctx.pub, T), await fromScratch(ctx.pub, T))).toEqual([]);
    expect(differingBuckets(await catalogue(ctx.pub, T), await catalogue(ctx.sub, T))).toEqual([]);
  });

  it('refuses a zero or negative time box and changes nothing', async () => {
    await expect(drain(ctx.pub, { deadline: Deadline.at(Date.now()) })).rejects.toThrow(/time box must be positive/);
    await expect(drain(ctx.pub, { deadline: Deadline.at(Date.now() - 5000) })).rejects.toThrow(/time box must be positive/);
  });

  it('never makes application writers wait while it sweeps', async () => {
    await ctx.pub.query('SELECT syncguard.request_full_sweep()');
    const running = drain(ctx.pub, { deadline: Deadline.after(3000) });
    const writer = await ctx.pair.ownerClient('publisher');
    const latencies: number[] = [];
    try {
      await writer.query("SET lock_timeout = '200ms'");
      for (let i = 0; i < 40; i++) {
        const t0 = Date.now();
        await writer.query(`UPDATE ${BIG} SET a = md5(a) WHERE id = $1`, [1 + Math.floor(Math.random() * 500_000)]);
        latencies.push(Date.now() - t0);
        await sleep(25);
      }
    } finally {
      await writer.close();
    }
    const s = await running;
    expect(s.bucketsRecomputed).toBeGreaterThan(0); // the drain was really working meanwhile
    expect(Math.max(...latencies)).toBeLessThan(200);
  });

  it('returns within 0.5 s of a 0.3 s box on a large backlog, saying it stopped on time', async () => {
    await ctx.pub.query('SELECT syncguard.request_full_sweep()'); // 520k rows to hash again (about 1 s)
    const t0 = Date.now();
    const s = await drain(ctx.pub, { deadline: Deadline.at(t0 + 300) });
    const took = Date.now() - t0;
    expect(took).toBeLessThan(500 + 300);
    expect(s.stoppedBecause).toBe('time');
    expect(s.sweepProgress).toBeLessThan(1);
    expect(s.bucketsRecomputed).toBeGreaterThan(0);
  });
});

describe('one table swept by several workers', () => {
  it('splits the pass into lanes that two drains sweep at once, and the catalogue is exact', async () => {
    await settle(ctx.pub);
    await ctx.pub.query(`DELETE FROM ${BIG} WHERE id >= 499000`); // rows gone since the last pass: their buckets must be emptied
    await ctx.pub.query('SELECT syncguard.request_full_sweep()');
    const other = await ctx.pair.ownerClient('publisher');
    try {
      const tables = [new Set<string>(), new Set<string>()];
      const deadline = Deadline.after(60_000);
      const runs = await Promise.all(
        [ctx.pub, other].map((c, i) =>
          drain(c, { deadline, resweepIntervalMs: null, onProgress: (p) => p.table !== undefined && tables[i]?.add(p.table) }),
        ),
      );
      // the one that finishes first sees the other's lanes still open, so says 'time'; never an error
      expect(runs.map((r) => r.stoppedBecause).sort()).toEqual(expect.arrayContaining(['empty']));
      expect(runs.map((r) => r.error)).toEqual([undefined, undefined]);
      // both worked on the big table's sweep, on different lanes, not one after the other
      expect(tables.map((t) => t.has(BIG))).toEqual([true, true]);
      expect(runs.every((r) => r.bucketsRecomputed > 50)).toBe(true);
      const id = await regId(ctx.pub, BIG);
      const { rows: lanes } = await ctx.pub.query<{ n: number; done: number }>(
        'SELECT count(*)::int AS n, count(*) FILTER (WHERE finished)::int AS done FROM syncguard.sweep_lane l JOIN syncguard.sweep s USING (reg_id) WHERE l.reg_id = $1 AND l.pass = s.pass',
        [id],
      );
      expect(lanes[0]?.n).toBeGreaterThan(1);
      expect(lanes[0]?.done).toBe(lanes[0]?.n);
      const { rows: sweep } = await ctx.pub.query('SELECT finished_at IS NOT NULL AS finished FROM syncguard.sweep WHERE reg_id = $1', [
        id,
      ]);
      expect(sweep).toEqual([{ finished: true }]);
      expect(await silentlyStale(ctx.pub, BIG)).toEqual([]);
      expect(differingBuckets(await catalogue(ctx.pub, BIG), await fromScratch(ctx.pub, BIG))).toEqual([]);
      expect((await catalogue(ctx.pub, BIG)).has('499')).toBe(false); // the emptied bucket holds no rows
    } finally {
      await other.close();
      await ctx.pub.query(`INSERT INTO ${BIG} SELECT i, md5(i::text), md5(i::text), now() - i * interval '1 s',
                             jsonb_build_object('i', i, 'x', md5(i::text)) FROM generate_series(499000, 500000) i`);
    }
  });
});

describe('drain robustness', () => {
  beforeEach(async () => {
    await settle(ctx.pub);
    await settle(ctx.sub);
  });

  it('loses no mark and writes no half row when the drain process is killed mid-batch', async () => {
    await ctx.pair.pub.query(`UPDATE ${T} SET meta = meta || '{"k": 1}' WHERE id % 2 = 0`);
    await ctx.pub.query('SELECT syncguard.request_full_sweep()');
    const drainerPid = async (): Promise<number | null> => {
      for (let i = 0; i < 500; i++) {
        const { rows } = await ctx.pair.pub.query<{ pid: number }>(
          "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'syncguard' AND state = 'active' AND query LIKE '%_batch(%' AND pid <> pg_backend_pid()",
        );
        if (rows[0] !== undefined) return rows[0].pid;
        await sleep(10);
      }
      return null;
    };
    // A backend whose client died finishes (or aborts) its statement and then notices; under load
    // that can take a while, so after 5 s it is terminated, as an administrator would. Either
    // way its batch is committed whole or rolled back whole, which is what is checked below.
    const gone = async (pid: number) => {
      for (let i = 0; i < 1500; i++) {
        const { rows } = await ctx.pair.pub.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [pid]);
        if (rows[0]?.n === 0) return;
        if (i === 250) await ctx.pair.pub.query('SELECT pg_terminate_backend($1)', [pid]);
        await sleep(20);
      }
      throw new Error(`backend ${pid} did not end`);
    };
    const startDrain = () =>
      spawn(process.execPath, ['bin/syncguard.js', 'drain', '--dsn', ctx.pair.publisherDsn, '--max-seconds', '60', '--json'], {
        stdio: 'ignore',
      });

    // 1. the drain process is killed outright while a batch statement runs
    const first = startDrain();
    const pid1 = await drainerPid();
    expect(pid1).not.toBeNull();
    await sleep(100);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    expect(first.signalCode).toBe('SIGKILL');
    await gone(pid1 as number);

    // 2. its server session is terminated in the middle of a batch (the transaction rolls back);
    // the first backend may have finished its last batch (a large one) after its client died
    await ctx.pair.pub.query(`UPDATE ${T} SET meta = meta || '{"k": 2}' WHERE id % 2 = 0`);
    await ctx.pub.query('SELECT syncguard.request_full_sweep()');
    const second = startDrain();
    const pid2 = await drainerPid();
    expect(pid2).not.toBeNull();
    await sleep(100);
    const { rows: killed } = await ctx.pair.pub.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid2]);
    expect(killed[0]?.ok).toBe(true);
    const code = await new Promise((r) => second.once('exit', r));
    expect(code).toBe(2); // the CLI reports the lost connection as an error
    await gone(pid2 as number);

    expect(await silentlyStale(ctx.pub, T)).toEqual([]);
    expect(await silentlyStale(ctx.pub, BIG)).toEqual([]);
    const { rows: half } = await ctx.pub.query(
      'SELECT count(*)::int AS n FROM syncguard.bucket WHERE (row_count IS NULL) <> (hash_sum IS NULL)',
    );
    expect(half[0]?.n).toBe(0);
    await settle(ctx.pub);
    expect(differingBuckets(await catalogue(ctx.pub, T), await fromScratch(ctx.pub, T))).toEqual([]);
  });

  it('notices lost unlogged state, re-sweeps, and status shows it', async () => {
    // what crash recovery does: every unlogged table of the schema emptied
    const { rows: unlogged } = await ctx.pub.query<{ t: string }>(
      "SELECT string_agg(c.oid::regclass::text, ', ') AS t FROM pg_class c WHERE c.relnamespace = 'syncguard'::regnamespace AND c.relkind = 'r' AND c.relpersistence = 'u'",
    );
    expect(unlogged[0]?.t).toContain('syncguard.sweep_lane');
    await ctx.pub.query(`TRUNCATE ${unlogged[0]?.t}`);
    const before = await nodeStatus(ctx.pub);
    expect(before.stateIntact).toBe(false);
    const s = await drain(ctx.pub, { deadline: Deadline.after(60_000) });
    expect(s).toMatchObject({ stateLost: true, fullResweepStarted: true, stoppedBecause: 'empty' });
    const after = await nodeStatus(ctx.pub);
    expect(after).toMatchObject({ stateIntact: true, stateLostCount: 1 });
    expect(after.stateLostAt).not.toBeNull();
    expect(differingBuckets(await catalogue(ctx.pub, T), await fromScratch(ctx.pub, T))).toEqual([]);
    expect(differingBuckets(await catalogue(ctx.pub, T), await catalogue(ctx.sub, T))).toEqual([]);
  });

  it('catches changes made with the triggers disabled in the periodic full re-sweep', async () => {
    await ctx.pair.sub.query(`ALTER TABLE ${T} DISABLE TRIGGER syncguard_update`);
    await ctx.pair.sub.query(`UPDATE ${T} SET customer = 'sneaky' WHERE id = 4242`);
    await ctx.pair.sub.query(`ALTER TABLE ${T} ENABLE ALWAYS TRIGGER syncguard_update`);
    expect(await silentlyStale(ctx.sub, T)).toEqual(['42']);
    const quiet = await drain(ctx.sub, { deadline: Deadline.after(30_000) });
    expect(quiet.fullResweepStarted).toBe(false);
    expect(await silentlyStale(ctx.sub, T)).toEqual(['42']);

    await ctx.pair.sub.query("UPDATE syncguard.drain_state SET full_sweep_at = now() - interval '25 hours'");
    const s = await drain(ctx.sub, { deadline: Deadline.after(60_000) });
    expect(s).toMatchObject({ fullResweepStarted: true, stoppedBecause: 'empty' });
    expect(await silentlyStale(ctx.sub, T)).toEqual([]);
    expect(differingBuckets(await catalogue(ctx.pub, T), await catalogue(ctx.sub, T))).toEqual(['42']);
    const status = await nodeStatus(ctx.sub);
    expect(status.tables.find((t) => t.table === T)?.sweepPass).toBeGreaterThan(1);
    await ctx.pair.sub.query(`UPDATE ${T} SET customer = 'c' || (4242 % 97) WHERE id = 4242`);
  });
});
