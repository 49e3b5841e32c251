// Issue 7, B9-B10 and A8: syncguard never stops replication or fails an application write when a
// key column changes, a drain skips a broken registration and carries on, a table replicated by a
// second subscription waits for that subscription, cascaded publishers track applied changes, and
// tables in inheritance trees or with differing key collations are refused.

import { describe, expect, it } from 'vitest';
import { SUPERUSER_PASSWORD } from '../../dev/cluster.js';
import { TableRef } from '../../functions/core/identifiers.js';
import { Deadline } from '../../functions/db/deadline.js';
import { drain } from '../../functions/db/drain.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { dirtyBuckets, register, registerPublisherOnly, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const TABLES = ['ranged', 'renamed', 'narrowed', 'healthy', 'cascaded'].map((t) => `public.${t}`);
const SECOND = 'public.second';
// a getter: a fresh deadline at each use
const quick = {
  get deadline() {
    return Deadline.after(20_000);
  },
};

const applyErrors = async () => {
  const { rows } = await ctx.pair.sub.query<{ n: string }>(
    'SELECT coalesce(sum(apply_error_count + sync_error_count), 0) AS n FROM pg_stat_subscription_stats',
  );
  return Number(rows[0]?.n);
};

const ctx = usePair({
  label: 'trust_repl',
  tables: TABLES,
  async prepare(pair) {
    await pair.both(`CREATE TABLE public.ranged (a int, b int, v text, PRIMARY KEY (a, b));
                     CREATE TABLE public.renamed (id int PRIMARY KEY, v text);
                     CREATE TABLE public.narrowed (id int PRIMARY KEY, v text, gone text);
                     CREATE TABLE public.healthy (id int PRIMARY KEY, v text);
                     CREATE TABLE public.cascaded (id int PRIMARY KEY, v text);
                     CREATE TABLE ${SECOND} (id int PRIMARY KEY, v text);`);
    for (const t of [...TABLES, SECOND]) {
      await pair.pub.query(
        t === 'public.ranged'
          ? `INSERT INTO ${t} SELECT i / 10, i % 10, 'v' FROM generate_series(1, 500) i`
          : `INSERT INTO ${t} SELECT i, 'v' || i FROM generate_series(1, 500) i`,
      );
    }
  },
  async ready({ pub, sub }) {
    for (const t of TABLES.filter((x) => x !== 'public.cascaded')) await register(pub, sub, t, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

describe('replication and application writes never fail because of syncguard', () => {
  it('keeps applying when a range-bucketed key column changes type on the subscriber', async () => {
    const before = await applyErrors();
    await ctx.pair.sub.query('ALTER TABLE public.ranged ALTER COLUMN a TYPE bigint');
    await ctx.pair.pub.query("INSERT INTO public.ranged VALUES (900, 1, 'new'); UPDATE public.ranged SET v = 'x' WHERE a = 3");
    await ctx.pair.catchUp(20_000); // a raising trigger would stop the subscription here
    expect(await applyErrors()).toBe(before);
    expect((await ctx.pair.sub.query('SELECT count(*)::int AS n FROM public.ranged WHERE a = 900')).rows[0]?.n).toBe(1);
    const r = await verifyPair(ctx.pub, ctx.sub, { ...quick, table: TableRef.of('public', 'ranged') });
    expect(r.status).toBe('incomplete');
    expect(r.tables[0]?.reason).toMatch(/subscriber: key column a is now bigint, registered as integer/);
    expect(r.tables[0]?.reason).toMatch(/a trigger could not mark changes since .*bucket_of_\d+\(bigint, integer\) does not exist/);
  });

  it('lets application writes through when the key column is renamed, and says the registration needs attention', async () => {
    await ctx.pair.both('ALTER TABLE public.renamed RENAME COLUMN id TO t_id');
    await ctx.pair.pub.query(`INSERT INTO public.renamed VALUES (1000, 'a');
                              UPDATE public.renamed SET v = 'b' WHERE t_id = 5;
                              DELETE FROM public.renamed WHERE t_id = 6`);
    await ctx.pair.catchUp(20_000);
    const r = await verifyPair(ctx.pub, ctx.sub, { ...quick, table: TableRef.of('public', 'renamed') });
    expect(r.status).toBe('incomplete');
    expect(r.tables[0]?.reason).toMatch(/publisher: key column id no longer exists \(dropped or renamed\)/);
    expect(r.tables[0]?.reason).toMatch(/publisher: a trigger could not mark changes since/);
  });

  it('drains the other tables when a hashed column was dropped, and verify reports that table instead of failing', async () => {
    await ctx.pair.both('ALTER TABLE public.narrowed DROP COLUMN gone');
    await ctx.pair.pub.query("UPDATE public.narrowed SET v = 'x' WHERE id = 1; UPDATE public.healthy SET v = 'x' WHERE id = 1");
    await ctx.pair.catchUp();
    const s = await drain(ctx.pub, { deadline: Deadline.after(5000), resweepIntervalMs: null });
    expect(s.stoppedBecause).toBe('empty'); // caught up with everything it can drain
    expect(s.faultyTables).toEqual(expect.arrayContaining(['public.narrowed']));
    expect(await dirtyBuckets(ctx.pub, 'public.healthy')).toEqual([]);
    const r = await verifyPair(ctx.pub, ctx.sub, quick);
    const narrowed = r.tables.find((t) => t.table === 'public.narrowed');
    expect(narrowed?.reason).toMatch(/hashed column gone no longer exists/);
    expect(r.tables.find((t) => t.table === 'public.healthy')?.state).toBe('compared');
  });

  it('waits for the subscription that replicates a table, not the first one by name', async () => {
    // a second publication and subscription carry public.second; "aaa" sorts before the pair's own
    const conn = `host=${ctx.pair.publisher.host} port=${ctx.pair.publisher.port} dbname=${ctx.pair.name} user=postgres password=${SUPERUSER_PASSWORD}`;
    const subName = `aaa_${ctx.pair.name}`;
    await ctx.pair.pub.query(`CREATE PUBLICATION ${subName} FOR TABLE ${SECOND}`);
    await ctx.pair.sub.query(
      `CREATE SUBSCRIPTION ${subName} CONNECTION '${conn}' PUBLICATION ${subName} WITH (copy_data = false, slot_name = '${subName}')`,
    );
    try {
      await ctx.pair.waitForSync();
      await register(ctx.pub, ctx.sub, SECOND, { bucketSize: 100 });
      await settle(ctx.pub);
      await settle(ctx.sub);
      await ctx.pair.sub.query(`ALTER SUBSCRIPTION ${subName} DISABLE`);
      await ctx.pair.pub.query(`UPDATE ${SECOND} SET v = 'changed' WHERE id = 7`);
      const r = await verifyPair(ctx.pub, ctx.sub, { ...quick, table: TableRef.of('public', 'second') });
      expect(r.status).toBe('incomplete');
      expect(r.reasons).toEqual([`no replication barrier: subscription ${subName} is disabled`]);
      // verifying everything, the other subscription's tables still get their barrier and a verdict
      const all = await verifyPair(ctx.pub, ctx.sub, quick);
      expect(all.tables.find((t) => t.table === SECOND)).toMatchObject({
        state: 'uncomparable',
        reason: `no replication barrier: subscription ${subName} is disabled`,
      });
      expect(all.tables.find((t) => t.table === 'public.healthy')?.state).toBe('compared');
      expect(all.verifiedLsn).not.toBeNull();
    } finally {
      await ctx.pair.sub.query(`DROP SUBSCRIPTION ${subName}`);
      await ctx.pair.pub.query(`SELECT pg_drop_replication_slot('${subName}') FROM pg_replication_slots WHERE slot_name = '${subName}'`);
    }
  });

  it('uses row triggers on a publisher whose table receives replicated changes (a cascade)', async () => {
    // the subscriber database publishes public.cascaded onward: its changes arrive by replication
    await registerPublisherOnly(ctx.sub, 'cascaded');
    const { rows: kinds } = await ctx.pair.sub.query<{ row: boolean }>(
      "SELECT DISTINCT (tgtype::int & 1) = 1 AS row FROM pg_trigger WHERE tgrelid = 'public.cascaded'::regclass AND tgname <> 'syncguard_truncate'",
    );
    expect(kinds).toEqual([{ row: true }]);
    await ctx.pair.pub.query("UPDATE public.cascaded SET v = 'x' WHERE id = 250");
    await ctx.pair.catchUp();
    expect(await dirtyBuckets(ctx.sub, 'public.cascaded')).toEqual(['2']);
    // applied changes of a cascade are not local writes
    expect((await ctx.sub.query('SELECT count(*)::int AS n FROM syncguard.local_write')).rows[0]?.n).toBe(0);
  });

  it('refuses a partition tree registered twice, inheritance children and keys whose collation differs between the nodes', async () => {
    await ctx.pair.both(`CREATE TABLE public.parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
                         CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (1000);
                         CREATE TABLE public.base (id int PRIMARY KEY);
                         CREATE TABLE public.child (id int PRIMARY KEY) INHERITS (public.base);`);
    await ctx.pair.pub.query('CREATE TABLE public.coll (k text COLLATE "C" PRIMARY KEY)');
    await ctx.pair.sub.query('CREATE TABLE public.coll (k text COLLATE "POSIX" PRIMARY KEY)');
    await ctx.pair.pub.query(`ALTER PUBLICATION ${ctx.pair.name} ADD TABLE public.parted_1, public.child, public.coll`);
    // a partition may be registered on its own, and then not its root (the same rows twice)
    await register(ctx.pub, ctx.sub, 'public.parted_1');
    await expect(register(ctx.pub, ctx.sub, 'public.parted')).rejects.toThrow(
      /partition public\.parted_1 of public\.parted is registered on its own; run syncguard unregister --table public\.parted_1 first/,
    );
    await expect(register(ctx.pub, ctx.sub, 'public.child')).rejects.toThrow(/is in an inheritance tree \(child\) on the publisher/);
    await expect(register(ctx.pub, ctx.sub, 'public.coll')).rejects.toThrow(
      /key column k of public\.coll has collation "C" on the publisher and "POSIX" on the subscriber/,
    );
  });
});
