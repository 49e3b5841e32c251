// The RDS-like privilege setup: tables owned by an application role, syncguard installed and run
// by a separate non-superuser that is a member of it, replication applying as the table owner
// (PG16+), and an application writer on the subscriber with no syncguard rights at all.

import { describe, expect, it } from 'vitest';
import { plainNode } from '../../dev/plain-node.js';
import { parseTableName } from '../../functions/core/identifiers.js';
import { type Client, connect } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { applyPlan, planBucket } from '../../functions/flows/repair.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { catalogue, differingBuckets, dirtyBuckets, register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.accounts';
const WRITER_PASSWORD = 'app-writer-pw';

async function asSuperuser(c: Client, sql: string): Promise<void> {
  await c.query(sql);
}

const ctx = usePair({
  label: 'privs',
  tables: [T],
  async prepare(pair) {
    for (const c of [pair.pub, pair.sub]) {
      // roles are cluster-wide: create them once, tolerating a parallel file doing the same
      await asSuperuser(
        c,
        `DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_owner') THEN CREATE ROLE app_owner NOLOGIN; END IF;
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_writer') THEN CREATE ROLE app_writer LOGIN PASSWORD '${WRITER_PASSWORD}'; END IF;
        END $$`,
      ).catch(() => {});
      await asSuperuser(
        c,
        `CREATE TABLE ${T} (id int PRIMARY KEY, balance numeric NOT NULL);
        ALTER TABLE ${T} OWNER TO app_owner;
        GRANT app_owner TO sg_owner;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ${T} TO app_writer;`,
      );
    }
    await pair.pub.query(`INSERT INTO ${T} SELECT i, i * 10 FROM generate_series(1, 500) i`);
  },
  ready: ({ pub, sub }) => register(pub, sub, T, { bucketSize: 50 }),
});

describe('privileges', () => {
  it('tracks changes applied as the table owner and written by an application role without syncguard rights', async () => {
    await settle(ctx.pub);
    await settle(ctx.sub);
    await ctx.pair.pub.query(`UPDATE ${T} SET balance = balance + 1 WHERE id IN (7, 420)`);
    await ctx.pair.catchUp();
    expect(await dirtyBuckets(ctx.sub, T)).toEqual(['0', '8']);
    const { rows: errs } = await ctx.pair.sub.query<{ n: string }>(
      'SELECT apply_error_count + sync_error_count AS n FROM pg_stat_subscription_stats WHERE subname = $1',
      [ctx.pair.name],
    );
    expect(Number(errs[0]?.n)).toBe(0);

    const writerDsn = ctx.pair.subscriberDsn.replace(/\/\/[^@]+@/, `//app_writer:${WRITER_PASSWORD}@`);
    const writer = await plainNode(writerDsn);
    try {
      await writer.query(`UPDATE ${T} SET balance = 0 WHERE id = 123`);
      await expect(writer.query('SELECT * FROM syncguard.bucket')).rejects.toThrow(/permission denied/);
      await expect(writer.query('SELECT syncguard.drain_batch(1)')).rejects.toThrow(/permission denied/);
      await expect(writer.query('DELETE FROM syncguard.dirty')).rejects.toThrow(/permission denied/);
    } finally {
      await writer.close();
    }
    expect(await dirtyBuckets(ctx.sub, T)).toEqual(['0', '2', '8']);
    await settle(ctx.pub);
    await settle(ctx.sub);
    expect(differingBuckets(await catalogue(ctx.pub, T), await catalogue(ctx.sub, T))).toEqual(['2']);
  });

  it('lets a verify role probe (the probe functions run as the owner), and no other role forge a probe or an answer', async () => {
    const VERIFIER_PASSWORD = 'verifier-pw';
    for (const c of [ctx.pair.pub, ctx.pair.sub]) {
      await c
        .query(
          `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_probe_verifier') THEN CREATE ROLE sg_probe_verifier LOGIN PASSWORD '${VERIFIER_PASSWORD}'; END IF; END $$`,
        )
        .catch(() => {});
    }
    await ctx.pub.query("SELECT syncguard.grant_role('sg_probe_verifier', 'verify')");
    await ctx.sub.query("SELECT syncguard.grant_role('sg_probe_verifier', 'verify')");
    const as = (dsn: string, user: string, pw: string) => dsn.replace(/\/\/[^@]+@/, `//${user}:${pw}@`);
    const vp = await connect(as(ctx.pair.publisherDsn, 'sg_probe_verifier', VERIFIER_PASSWORD), 'publisher');
    const vs = await connect(as(ctx.pair.subscriberDsn, 'sg_probe_verifier', VERIFIER_PASSWORD), 'subscriber');
    try {
      await ctx.pair.pub.query(`UPDATE ${T} SET balance = balance + 1 WHERE id = 77`);
      const r = await verifyPair(vp, vs, { deadline: Deadline.after(20_000) });
      expect(r.tables[0]).toMatchObject({ method: 'probe', coveragePct: 100 });
      expect(r.probes.probes).toBeGreaterThan(0); // the earlier test's drift in bucket 2, settled by a probe
      expect(r.status).toBe('diverged');
      expect(r.mismatches.map((m) => `${m.bucket}:${m.how}`)).toEqual(['2:probe']);
      await ctx.pair.sub.query(`UPDATE ${T} SET balance = 1230 WHERE id = 123`); // repaired by hand
      expect((await verifyPair(vp, vs, { deadline: Deadline.after(20_000) })).status).toBe('in_sync');
    } finally {
      await vp.close();
      await vs.close();
    }
    const writer = await plainNode(as(ctx.pair.subscriberDsn, 'app_writer', WRITER_PASSWORD));
    try {
      await expect(writer.query("INSERT INTO syncguard.probe (origin, id, kind) VALUES (gen_random_uuid(), 1, 'marker')")).rejects.toThrow(
        /permission denied/,
      );
      await expect(writer.query('INSERT INTO syncguard.probe_result (origin, id, ok) VALUES (gen_random_uuid(), 1, true)')).rejects.toThrow(
        /permission denied/,
      );
      await expect(writer.query("SELECT syncguard.probe_buckets('public', 'accounts', '{0}', gen_random_uuid(), 'x')")).rejects.toThrow(
        /permission denied/,
      );
    } finally {
      await writer.close();
    }
  });

  it('lets a repair role inspect and repair (the subscriber writes as the owner), and a verify role not', async () => {
    const PW = 'repairer-pw';
    for (const c of [ctx.pair.pub, ctx.pair.sub]) {
      await c
        .query(
          `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_probe_repairer') THEN CREATE ROLE sg_probe_repairer LOGIN PASSWORD '${PW}'; END IF; END $$`,
        )
        .catch(() => {});
    }
    await ctx.pub.query("SELECT syncguard.grant_role('sg_probe_repairer', 'repair')");
    await ctx.sub.query("SELECT syncguard.grant_role('sg_probe_repairer', 'repair')");
    const as = (dsn: string, user: string, pw: string) => dsn.replace(/\/\/[^@]+@/, `//${user}:${pw}@`);
    const rp = await connect(as(ctx.pair.publisherDsn, 'sg_probe_repairer', PW), 'publisher');
    const rs = await connect(as(ctx.pair.subscriberDsn, 'sg_probe_repairer', PW), 'subscriber');
    const vp = await connect(as(ctx.pair.publisherDsn, 'sg_probe_verifier', 'verifier-pw'), 'publisher');
    try {
      await ctx.pair.sub.query(`UPDATE ${T} SET balance = -5 WHERE id = 310`);
      const { plan } = await planBucket(rp, rs, parseTableName(T), '6', { pair: 'p' });
      expect(plan.rowCount).toBe(1);
      const r = await applyPlan(rp, rs, { id: 'roles', ...plan });
      expect(r).toMatchObject({ counts: { applied: 1 }, bucketAfter: 'equal' });
      await expect(vp.query("SELECT syncguard.probe_rows('public', 'accounts', 6, gen_random_uuid(), 'x')")).rejects.toThrow(
        /permission denied/,
      );
      await expect(vp.query("SELECT syncguard.row_values('public', 'accounts', 6, NULL)")).rejects.toThrow(/permission denied/);
    } finally {
      await rp.close();
      await rs.close();
      await vp.close();
    }
  });
});
