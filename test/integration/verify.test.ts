// Verification against real replication: in sync, exactly the injected divergences, no verdict
// without a barrier, refusal to compare across different registrations, and no false alarm while
// the publisher keeps writing and the subscription pauses.

import { describe, expect, it } from 'vitest';
import { plainNode } from '../../dev/plain-node.js';
import { TableRef } from '../../functions/core/identifiers.js';
import { connect } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { installSchema } from '../../functions/db/install.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { cli } from '../support/cli.js';
import { regId, register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const ORDERS = 'public.orders';
const TOKENS = 'public.tokens';
const LINES = 'public.lines';

const ctx = usePair({
  label: 'verify',
  tables: [ORDERS, TOKENS, LINES],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${ORDERS} (id int PRIMARY KEY, total numeric, note text);
                     CREATE TABLE ${TOKENS} (id uuid PRIMARY KEY, owner int);
                     CREATE TABLE ${LINES} (order_id int, line int, qty int, PRIMARY KEY (order_id, line));`);
    await pair.pub.query(`INSERT INTO ${ORDERS} SELECT i, i * 1.5, 'n' || i FROM generate_series(1, 3000) i;
                          INSERT INTO ${TOKENS} SELECT md5(i::text)::uuid, i FROM generate_series(1, 2000) i;
                          INSERT INTO ${LINES} SELECT i / 4, i % 4, i FROM generate_series(1, 4000) i;`);
  },
  async ready({ pub, sub }) {
    for (const t of [ORDERS, TOKENS, LINES]) await register(pub, sub, t, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

const pairArgs = () => ['--publisher-dsn', ctx.pair.publisherDsn, '--subscriber-dsn', ctx.pair.subscriberDsn];

describe('verify', () => {
  it('says in sync, with full coverage and the LSN it holds at', async () => {
    const r = await cli('verify', ...pairArgs(), '--json');
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(1);
    const report = JSON.parse(r.out[0] as string);
    expect(report).toMatchObject({ status: 'in_sync', coveragePct: 100, mismatches: [], candidates: [], localWrites: [], warnings: [] });
    expect(report.verifiedLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(report.tables.map((t: { table: string; bucketsCompared: number }) => [t.table, t.bucketsCompared])).toEqual([
      ['public.lines', 40],
      ['public.orders', 31],
      ['public.tokens', 20],
    ]);
    const text = await cli('verify', ...pairArgs());
    expect(text.out[0]).toMatch(/^verify: IN SYNC as of publisher LSN \S+ for 3 tables; coverage 100\.00 %/);
  });

  it('reports exactly the injected divergences, confirmed in two rounds', async () => {
    const tokensReg = await regId(ctx.sub, TOKENS);
    const linesReg = await regId(ctx.sub, LINES);
    const { rows: tok } = await ctx.pair.sub.query(
      `SELECT id::text, owner, syncguard."bucket_of_${tokensReg}"(id)::text AS b FROM ${TOKENS} ORDER BY id LIMIT 1 OFFSET 777`,
    );
    const { rows: line } = await ctx.pair.sub.query(`SELECT syncguard."bucket_of_${linesReg}"(500, 9)::text AS b`);
    await ctx.pair.sub.query(`UPDATE ${ORDERS} SET note = NULL WHERE id = 1234`); // bucket 12
    await ctx.pair.sub.query(`DELETE FROM ${TOKENS} WHERE id = $1`, [tok[0]?.id]);
    await ctx.pair.sub.query(`INSERT INTO ${LINES} VALUES (500, 9, 1)`);

    const r = await cli('verify', ...pairArgs(), '--json');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.out[0] as string);
    expect(report.status).toBe('diverged');
    expect(report.mismatches.map((m: { table: string; bucket: string }) => `${m.table}:${m.bucket}`).sort()).toEqual(
      [`public.lines:${line[0]?.b}`, 'public.orders:12', `public.tokens:${tok[0]?.b}`].sort(),
    );
    const orders = report.mismatches.find((m: { table: string }) => m.table === ORDERS);
    expect(orders.publisher.rows).toBe('100');
    expect(orders.subscriber.rows).toBe('100');
    expect(orders.publisher.hash).not.toBe(orders.subscriber.hash);
    // the subscriber tells its own writes from replicated ones, and says who made them
    expect(report.localWrites.map((l: { table: string }) => l.table).sort()).toEqual([LINES, ORDERS, TOKENS]);
    expect(report.localWrites.every((l: { role: string }) => l.role === 'postgres')).toBe(true);
    expect(report.warnings).toEqual(['3 local (non-replicated) write(s) to monitored tables on the subscriber: the usual cause of drift']);
    const tokens = report.mismatches.find((m: { table: string }) => m.table === TOKENS);
    expect(Number(tokens.publisher.rows) - Number(tokens.subscriber.rows)).toBe(1);

    // undo the drift by hand: the pair is in sync again
    await ctx.pair.sub.query(`UPDATE ${ORDERS} SET note = 'n1234' WHERE id = 1234; DELETE FROM ${LINES} WHERE order_id = 500 AND line = 9`);
    await ctx.pair.sub.query(`INSERT INTO ${TOKENS} VALUES ($1, $2)`, [tok[0]?.id, tok[0]?.owner]);
    expect((await cli('verify', ...pairArgs())).code).toBe(0);
  });

  it('gives no verdict without a barrier: a disabled subscription is incomplete, exit 3', async () => {
    await ctx.pair.sub.query(`ALTER SUBSCRIPTION ${ctx.pair.name} DISABLE`);
    try {
      const r = await cli('verify', ...pairArgs(), '--json', '--time-limit', '5');
      expect(r.code).toBe(3);
      const report = JSON.parse(r.out[0] as string);
      expect(report).toMatchObject({ status: 'incomplete', verifiedLsn: null, mismatches: [] });
      expect(report.reasons).toEqual([`no replication barrier: subscription ${ctx.pair.name} is disabled`]);
    } finally {
      await ctx.pair.sub.query(`ALTER SUBSCRIPTION ${ctx.pair.name} ENABLE`);
    }
  });

  it('refuses to compare a table whose registrations differ, naming both fingerprints', async () => {
    const { rows: fp } = await ctx.pair.sub.query("SELECT fingerprint FROM syncguard.registration WHERE table_name = 'orders'");
    await ctx.pair.sub.query("UPDATE syncguard.registration SET fingerprint = 'sg2-tampered' WHERE table_name = 'orders'");
    try {
      const report = await verifyPair(ctx.pub, ctx.sub, { table: TableRef.of('public', 'orders') });
      expect(report.status).toBe('incomplete');
      expect(report.tables[0]).toMatchObject({ state: 'uncomparable', bucketsCompared: 0 });
      expect(report.tables[0]?.reason).toMatch(/registration fingerprints differ: publisher sg2-[0-9a-f]{16}, subscriber sg2-tampered/);
    } finally {
      await ctx.pair.sub.query("UPDATE syncguard.registration SET fingerprint = $1 WHERE table_name = 'orders'", [fp[0]?.fingerprint]);
    }
  });

  it('reports parity beside the verdict: a subscriber sequence behind the keys, and extra columns', async () => {
    await ctx.pair.both('CREATE TABLE public.tickets (id serial PRIMARY KEY, subject text)');
    await ctx.pair.pub.query("INSERT INTO public.tickets (subject) SELECT 's' || i FROM generate_series(1, 300) i");
    await ctx.pair.pub.query(`ALTER PUBLICATION ${ctx.pair.name} ADD TABLE public.tickets`);
    await ctx.pair.sub.query(`ALTER SUBSCRIPTION ${ctx.pair.name} REFRESH PUBLICATION`);
    await ctx.pair.waitForSync();
    await register(ctx.pub, ctx.sub, 'public.tickets', { bucketSize: 100 });
    await ctx.pair.sub.query('ALTER TABLE public.tickets ADD COLUMN seen boolean');
    await settle(ctx.pub); // verify drains dirty buckets, never a first sweep: that is the drain's work
    await settle(ctx.sub);
    const r = await verifyPair(ctx.pub, ctx.sub, { table: TableRef.of('public', 'tickets') });
    expect(r.reasons).toEqual([]);
    expect(r.status).toBe('in_sync'); // parity findings do not change the data verdict
    expect(r.parity.map((f) => `${f.level}: ${f.message}`)).toEqual([
      'info: subscriber-only columns: seen',
      expect.stringMatching(/^warning: sequence public\.tickets_id_seq on the subscriber is at its start, behind max\(id\) = 300/),
    ]);
    expect(r.warnings).toEqual([expect.stringMatching(/^public\.tickets: sequence public\.tickets_id_seq/)]);
  });

  it('resolves dirty buckets by probes, where two rounds leave them skipped', async () => {
    // marks that the verifier's own drain clears too late: the drain gets no time when every
    // bucket it claims is locked by another session
    await ctx.pair.pub.query(`UPDATE ${ORDERS} SET total = total WHERE id = 2500`); // bucket 25, equal on both sides
    await ctx.pair.sub.query(`UPDATE ${ORDERS} SET note = 'hot' WHERE id = 2650`); // bucket 26, drift
    await ctx.pair.catchUp();
    const holders = [await connect(ctx.pair.publisherDsn, 'publisher'), await connect(ctx.pair.subscriberDsn, 'subscriber')];
    try {
      for (const h of holders) {
        await h.query(
          "BEGIN; SELECT 1 FROM syncguard.bucket b JOIN syncguard.registrations r USING (reg_id) WHERE r.table_name = 'orders' AND b.bucket IN (25, 26) FOR UPDATE",
        );
      }
      // a getter: a fresh deadline at each use
      const quick = {
        table: TableRef.of('public', 'orders'),
        get deadline() {
          return Deadline.after(15_000);
        },
      };
      // (the fallback's slot barrier waits for the subscriber's next status message: up to 10 s idle)
      const rounds = await verifyPair(ctx.pub, ctx.sub, { ...quick, deadline: Deadline.after(40_000), noProbes: true });
      expect(rounds.status).toBe('incomplete');
      expect(rounds.tables[0]).toMatchObject({ method: 'two_rounds' });
      expect(rounds.mismatches).toEqual([]);
      const probed = await verifyPair(ctx.pub, ctx.sub, quick);
      expect(probed.status).toBe('diverged');
      expect(probed.mismatches).toEqual([
        expect.objectContaining({ bucket: '26', how: 'probe', lsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/) }),
      ]);
      expect(probed.tables[0]).toMatchObject({ method: 'probe', bucketsSkipped: 0, coveragePct: 100 });
      expect(probed.tables[0]?.bucketsProbed).toBeGreaterThanOrEqual(2);
    } finally {
      for (const h of holders) {
        await h.query('ROLLBACK').catch(() => {});
        await h.close();
      }
    }
    await ctx.pair.sub.query(`UPDATE ${ORDERS} SET note = 'n2650' WHERE id = 2650`);
  });

  it("gives no verdict when the subscriber cannot reach the barrier in time, or is not this publisher's subscriber", async () => {
    // the apply worker waits behind a lock on the subscriber: replication stalls, the barrier times out
    const blocker = await plainNode(ctx.pair.subscriberDsn);
    try {
      await blocker.query(`BEGIN; LOCK TABLE ${ORDERS} IN SHARE MODE`); // blocks the apply's UPDATE, not reads
      await ctx.pair.pub.query(`UPDATE ${ORDERS} SET total = total + 1 WHERE id = 1`);
      const r = await verifyPair(ctx.pub, ctx.sub, { deadline: Deadline.after(4000) });
      expect(r.status).toBe('incomplete');
      expect(r.reasons[0]).toMatch(/^no replication barrier: the subscriber did not apply the probe within \d+ ms/);
      // the fallback's slot barrier says where the WAL it waited for stands
      const rounds = await verifyPair(ctx.pub, ctx.sub, { deadline: Deadline.after(4000), noProbes: true });
      expect(rounds.status).toBe('incomplete');
      expect(rounds.reasons[0]).toMatch(
        /^no replication barrier: barrier timeout after \d+ ms: slot \S+ confirmed [0-9A-F]+\/[0-9A-F]+, needed [0-9A-F]+\/[0-9A-F]+ \(the publisher has flushed its WAL to [0-9A-F]+\/[0-9A-F]+(, its walsender has sent [0-9A-F]+\/[0-9A-F]+)?\)/,
      );
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.close();
    }
    await ctx.pair.catchUp();

    // a database with syncguard but no subscription to this publisher
    const lonely = `${ctx.pair.name}_lonely`;
    await ctx.pair.sub.query(`CREATE DATABASE ${lonely} OWNER sg_owner`);
    const other = await connect(ctx.pair.subscriberDsn.replace(/\/[^/]+$/, `/${lonely}`), 'subscriber');
    try {
      await installSchema(other);
      const r = await verifyPair(ctx.pub, other, { deadline: Deadline.after(5000) });
      expect(r.status).toBe('incomplete');
      expect(r.tables.map((t) => t.table)).toEqual(expect.arrayContaining([LINES, ORDERS, TOKENS]));
      for (const t of r.tables) {
        expect([t.state, t.reason]).toEqual([
          'uncomparable',
          expect.stringMatching(/^registered on the publisher only, not on the subscriber/),
        ]);
      }
    } finally {
      await other.close();
      await ctx.pair.sub.query(`DROP DATABASE ${lonely} WITH (FORCE)`);
    }
  });
});
