// Issue 17 item 4: the row trigger's memo (the transaction-local setting syncguard.mark_<reg>)
// skipped a mark when it named the bucket in a session with session_replication_role = replica.
// A non-superuser granted SET on session_replication_role (PostgreSQL 15+, as rds_superuser has
// it) could set both and write a bucket with no mark and no local-write record; a user BEFORE
// trigger in the apply worker could set the memo too. The memo is now trusted only when a mark of
// this transaction for that bucket exists, and only replication workers count as replication.

import { describe, expect, it } from 'vitest';
import { plainNode } from '../../dev/plain-node.js';
import { TableRef } from '../../functions/core/identifiers.js';
import type { Client } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { regId, register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const WRITER = 'sg_memo_writer';
const PW = 'sg-memo-writer-pw';
const TABLES = ['public.acc', 'public.applied', 'public.parts_a'];

const ctx = usePair({
  label: 'trust_memo',
  tables: TABLES,
  async prepare(pair) {
    for (const c of [pair.pub, pair.sub]) {
      await c
        .query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${WRITER}') THEN
                  CREATE ROLE ${WRITER} LOGIN PASSWORD '${PW}' NOSUPERUSER; END IF; END $$`)
        .catch(() => {});
      await c.query(`GRANT SET ON PARAMETER session_replication_role TO ${WRITER}`);
    }
    await pair.both(
      `CREATE TABLE public.acc (id int PRIMARY KEY, v text); CREATE TABLE public.applied (id int PRIMARY KEY, v text);
       CREATE TABLE public.parts (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
       CREATE TABLE public.parts_a PARTITION OF public.parts FOR VALUES FROM (0) TO (100000);
       GRANT SELECT, UPDATE ON public.acc, public.parts, public.parts_a TO ${WRITER};`,
    );
    await pair.asOwner(
      'publisher',
      `INSERT INTO public.acc SELECT i, 'v' || i FROM generate_series(1, 300) i;
       INSERT INTO public.applied SELECT i, 'v' || i FROM generate_series(1, 300) i;
       INSERT INTO public.parts SELECT i, 'v' || i FROM generate_series(1, 300) i;`,
    );
  },
  async ready({ pub, sub }) {
    for (const t of TABLES) await register(pub, sub, t, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

async function asWriter(side: 'publisher' | 'subscriber', sql: string): Promise<void> {
  const c = side === 'publisher' ? ctx.pair.publisher : ctx.pair.subscriber;
  const w = await plainNode(`postgres://${WRITER}:${PW}@${c.host}:${c.port}/${ctx.pair.name}`);
  try {
    await w.query(sql);
  } finally {
    await w.close();
  }
}

/** A transaction that sets replica mode and the memo to the bucket it then writes. */
const forged = (reg: number, bucket: number, update: string) =>
  `BEGIN; SET LOCAL session_replication_role = replica; SELECT set_config('syncguard.mark_${reg}', '${bucket}', true); ${update}; COMMIT;`;

const marks = async (c: Client, table: string, bucket: number) =>
  Number(
    (
      await c.query<{ n: string }>('SELECT count(*) AS n FROM syncguard.dirty WHERE reg_id = $1 AND bucket = $2', [
        await regId(c, table),
        bucket,
      ])
    ).rows[0]?.n,
  );

describe('the memo cannot suppress a mark', () => {
  it('subscriber: a non-superuser with replica mode and a forged memo is marked, recorded as a local write, and found', async () => {
    const reg = await regId(ctx.sub, 'public.acc');
    await asWriter('subscriber', forged(reg, 0, `UPDATE public.acc SET v = 'local' WHERE id = 5`));
    expect(await marks(ctx.sub, 'public.acc', 0)).toBeGreaterThan(0);
    const { rows } = await ctx.sub.query<{ role: string; bucket: string }>(
      'SELECT role, bucket::text FROM syncguard.local_write WHERE reg_id = $1',
      [reg],
    );
    expect(rows).toEqual([{ role: WRITER, bucket: '0' }]);
    const v = await verifyPair(ctx.pub, ctx.sub, { deadline: Deadline.after(20_000), table: TableRef.of('public', 'acc') });
    expect(v.status).toBe('diverged');
    expect(v.mismatches.map((m) => m.bucket)).toEqual(['0']);
  });

  it('publisher: a partition registered on its own (row triggers) is marked despite a forged memo', async () => {
    const reg = await regId(ctx.pub, 'public.parts_a');
    await asWriter('publisher', forged(reg, 1, `UPDATE public.parts_a SET v = 'changed' WHERE id = 150`));
    expect(await marks(ctx.pub, 'public.parts_a', 1)).toBeGreaterThan(0);
    await ctx.pair.catchUp();
    const v = await verifyPair(ctx.pub, ctx.sub, { deadline: Deadline.after(20_000), table: TableRef.of('public', 'parts_a') });
    expect(v.status).toBe('in_sync');
  });

  it('apply worker: a user BEFORE trigger that sets the memo does not suppress the mark of an applied change', async () => {
    const reg = await regId(ctx.sub, 'public.applied');
    await ctx.pair.asOwner(
      'subscriber',
      `CREATE FUNCTION public.forge_memo() RETURNS trigger LANGUAGE plpgsql AS $f$
       BEGIN PERFORM pg_catalog.set_config('syncguard.mark_${reg}', (NEW.id / 100)::text, true); RETURN NEW; END $f$;
       CREATE TRIGGER forge BEFORE UPDATE ON public.applied FOR EACH ROW EXECUTE FUNCTION public.forge_memo();
       ALTER TABLE public.applied ENABLE ALWAYS TRIGGER forge;`,
    );
    await settle(ctx.sub);
    await ctx.pair.pub.query(`UPDATE public.applied SET v = 'new' WHERE id = 250`);
    await ctx.pair.catchUp();
    expect(await marks(ctx.sub, 'public.applied', 2)).toBeGreaterThan(0);
    // replicated, so no local write
    const { rows } = await ctx.sub.query('SELECT 1 FROM syncguard.local_write WHERE reg_id = $1', [reg]);
    expect(rows).toHaveLength(0);
  });
});
