// Issue 7, A2, A3 and C13: no role without syncguard rights can write anything that changes a
// verdict (dirty marks, local-write records), orphan marks cannot stall the drain, and the drain
// and verify roles get exactly what they need.

import { describe, expect, it } from 'vitest';
import { plainNode } from '../../dev/plain-node.js';
import type { Client } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { cli } from '../support/cli.js';
import { regId, register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.ledger';
const MEMBERS = 'public.members';
const ROLES = ['sg_connect', 'sg_app', 'sg_drainer', 'sg_verifier'];
const PW = 'forgery-test-pw';

const ctx = usePair({
  label: 'trust_forge',
  tables: [T, MEMBERS],
  async prepare(pair) {
    for (const c of [pair.pub, pair.sub]) {
      // roles are cluster-wide: create them once, tolerating a parallel file doing the same
      for (const r of ROLES) {
        await c
          .query(
            `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${r}') THEN CREATE ROLE ${r} LOGIN PASSWORD '${PW}'; END IF; END $$`,
          )
          .catch(() => {});
      }
    }
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, amount numeric NOT NULL);
                     GRANT SELECT, INSERT, UPDATE, DELETE ON ${T} TO sg_app;`);
    await pair.both(`CREATE TABLE ${MEMBERS} (email text COLLATE "C" PRIMARY KEY, v int)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, i FROM generate_series(1, 1000) i;
                          INSERT INTO ${MEMBERS} SELECT 'person' || i || '@example.com', i FROM generate_series(1, 1000) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 100 });
    await register(pub, sub, MEMBERS, { bucketSize: 100 }); // range buckets: bounds are e-mail addresses
    for (const c of [pub, sub]) {
      await c.query("SELECT syncguard.grant_role('sg_drainer', 'drain'), syncguard.grant_role('sg_verifier', 'verify')");
    }
    await settle(pub);
    await settle(sub);
  },
});

const dsnAs = (dsn: string, role: string) => dsn.replace(/\/\/[^@]+@/, `//${role}:${PW}@`);
async function as<T>(side: 'publisher' | 'subscriber', role: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = await plainNode(dsnAs(side === 'publisher' ? ctx.pair.publisherDsn : ctx.pair.subscriberDsn, role));
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}
const count = async (c: Client, sql: string) => Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${sql}`)).rows[0]?.n);

describe('forgery', () => {
  it('lets no role without syncguard rights write a dirty mark or a local-write record', async () => {
    const reg = await regId(ctx.pub, T);
    for (const side of ['publisher', 'subscriber'] as const) {
      for (const role of ['sg_connect', 'sg_app']) {
        await as(side, role, async (c) => {
          await expect(
            c.query(`INSERT INTO syncguard.dirty (reg_id, bucket, xid, marked_at) VALUES (${reg}, 3, '1', now() + interval '10 years')`),
          ).rejects.toThrow(/permission denied/);
          await expect(
            c.query(
              `INSERT INTO syncguard.local_write (reg_id, bucket, xid, written_at, role, application_name) VALUES (${reg}, 3, '1', '2099-01-01', 'x', 'y')`,
            ),
          ).rejects.toThrow(/permission denied/);
          // nor end a sweep pass early by marking its lanes done (node 0021)
          await expect(c.query('UPDATE syncguard.sweep_lane SET finished = true')).rejects.toThrow(/permission denied/);
          await expect(c.query('UPDATE syncguard.sweep SET finished_at = now()')).rejects.toThrow(/permission denied/);
          // no syncguard function at all: the triggers run as the owner
          const { rows: callable } = await c.query<{ f: string }>(
            "SELECT p.oid::regprocedure::text AS f FROM pg_proc p WHERE p.pronamespace = 'syncguard'::regnamespace AND has_function_privilege(p.oid, 'EXECUTE')",
          );
          expect(callable).toEqual([]);
          await expect(c.query('SELECT syncguard.verify_ranges(64)')).rejects.toThrow(/permission denied/);
          await expect(c.query('SELECT syncguard.drain_batch(10)')).rejects.toThrow(/permission denied/);
        });
      }
    }
    for (const c of [ctx.pub, ctx.sub]) {
      expect(await count(c, 'syncguard.dirty')).toBe(0);
      expect(await count(c, 'syncguard.local_write')).toBe(0);
      expect(await count(c, 'syncguard.fault')).toBe(0);
    }
  });

  it("cannot lend the owner's trigger an operator through the writer's search_path", async () => {
    // the statement trigger runs as the owner with no SET clause (0022): every operator in it is
    // qualified, so a writer's own '=' on text, first on its search_path, is never called (had it
    // been, the owner would have logged itself in evil.calls, which anyone may insert into)
    await ctx.pair.pub.query(`DROP SCHEMA IF EXISTS evil CASCADE; CREATE SCHEMA evil AUTHORIZATION sg_app;
      CREATE TABLE evil.calls (who name, at timestamptz DEFAULT now()); ALTER TABLE evil.calls OWNER TO sg_app;
      GRANT USAGE ON SCHEMA evil TO PUBLIC; GRANT INSERT ON evil.calls TO PUBLIC; GRANT SELECT, UPDATE ON ${MEMBERS} TO sg_app`);
    try {
      await as('publisher', 'sg_app', async (c) => {
        await c.query(`CREATE FUNCTION evil.eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
                         $$ BEGIN INSERT INTO evil.calls (who) VALUES (current_user); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
                       CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq)`);
        await c.query('SET search_path = evil, pg_catalog, public');
        expect((await c.query("SELECT 'a'::text = 'a'::text AS same")).rows[0]?.same).toBe(true);
        expect(await count(c, 'evil.calls')).toBe(1); // the writer's own query does use it
        await c.query(`UPDATE ${T} SET amount = amount + 1 WHERE id = 555`);
        await c.query(`UPDATE ${MEMBERS} SET v = v + 1 WHERE email OPERATOR(pg_catalog.=) 'person555@example.com'`);
        expect(await count(c, 'evil.calls')).toBe(1); // the triggers never did
      });
      expect(await count(ctx.pair.pub, "evil.calls WHERE who <> 'sg_app'")).toBe(0);
      const marks = await ctx.pub.query<{ t: string }>(
        `SELECT DISTINCT g.table_name AS t FROM syncguard.dirty d JOIN syncguard.registrations g USING (reg_id) ORDER BY 1`,
      );
      expect(marks.rows.map((r) => r.t)).toEqual(['ledger', 'members']);
      const { rows: settings } = await ctx.pub.query<{ c: string[] | null }>(
        `SELECT p.proconfig AS c FROM syncguard.registrations g JOIN pg_proc p ON p.oid = format('syncguard.mark_%s', g.reg_id)::regproc WHERE g.table_name = 'ledger'`,
      );
      expect(settings).toEqual([{ c: null }]);
    } finally {
      await ctx.pair.pub.query(`DROP SCHEMA evil CASCADE; REVOKE SELECT, UPDATE ON ${MEMBERS} FROM sg_app`);
      await ctx.pair.catchUp();
      await settle(ctx.pub);
      await settle(ctx.sub);
    }
  });

  it("marks a writer's change with its own transaction and the server's clock", async () => {
    const { rows } = await as('subscriber', 'sg_app', async (c) => {
      await c.query('BEGIN');
      await c.query(`UPDATE ${T} SET amount = amount + 1 WHERE id = 450`);
      const x = await c.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid');
      await c.query('COMMIT');
      return x;
    });
    const { rows: marks } = await ctx.sub.query<{ xid: string; age: number }>(
      'SELECT xid::text, extract(epoch FROM clock_timestamp() - marked_at)::float8 AS age FROM syncguard.dirty',
    );
    expect(marks).toEqual([{ xid: rows[0]?.xid, age: expect.any(Number) }]);
    expect(Math.abs(Number(marks[0]?.age))).toBeLessThan(30);
    await ctx.sub.query(`UPDATE ${T} SET amount = amount - 1 WHERE id = 450`); // as it was
  });

  it("cannot be told by a writer to skip its marks: the trigger's memo counts only in the apply worker", async () => {
    const reg = await regId(ctx.sub, T);
    await settle(ctx.sub);
    await as('subscriber', 'sg_app', async (c) => {
      await c.query('BEGIN');
      await c.query(`SELECT set_config('syncguard.mark_${reg}', '4', true)`); // "bucket 4 is already marked"
      await c.query(`UPDATE ${T} SET amount = amount WHERE id = 450`);
      await c.query('COMMIT');
    });
    expect((await ctx.sub.query<{ b: string }>('SELECT bucket::text AS b FROM syncguard.dirty WHERE reg_id = $1', [reg])).rows).toEqual([
      { b: '4' },
    ]);
    await settle(ctx.sub);
  });

  it("reports every writing role with its true count: one role's writes cannot hide another's", async () => {
    await as('subscriber', 'sg_app', async (c) => {
      for (let i = 0; i < 200; i++) {
        await c.query(`SET application_name = 'noise-${i}'`);
        await c.query(`UPDATE ${T} SET amount = amount WHERE id = $1`, [1 + (i % 1000)]);
      }
    });
    await ctx.pair.sub.query("SET application_name = 'the-real-one'; UPDATE public.ledger SET amount = 0 WHERE id = 999");
    const r = await verifyPair(ctx.pub, ctx.sub, { deadline: Deadline.after(20_000) });
    expect(r.status).toBe('diverged');
    const byRole = Object.fromEntries(r.localWrites.map((g) => [g.role, g]));
    expect(byRole.postgres).toMatchObject({ table: T, writes: 1, buckets: 1, applicationNames: ['the-real-one'] });
    expect(byRole.sg_app?.writes).toBeGreaterThanOrEqual(200);
    const total = r.localWrites.reduce((a, g) => a + g.writes, 0);
    expect(r.warnings[0]).toBe(`${total} local (non-replicated) write(s) to monitored tables on the subscriber: the usual cause of drift`);
    await ctx.pair.sub.query('UPDATE public.ledger SET amount = 999 WHERE id = 999');
  });

  it('drains real marks behind thousands of orphan marks, and deletes the orphans', async () => {
    await ctx.sub.query(
      "INSERT INTO syncguard.dirty (reg_id, bucket, xid) SELECT 99999, g, '1' FROM generate_series(1, 5000) g", // as the owner could
    );
    await ctx.pair.pub.query(`UPDATE ${T} SET amount = amount + 0 WHERE id = 10`);
    await ctx.pair.catchUp();
    const { rows } = await ctx.sub.query<{ b: { buckets: number } }>('SELECT syncguard.drain_batch(10) AS b');
    expect(rows[0]?.b.buckets).toBeGreaterThan(0);
    await ctx.sub.query('SELECT syncguard.check_state()');
    expect(await count(ctx.sub, 'syncguard.dirty WHERE reg_id = 99999')).toBe(0);
  });

  it('gives the drain and verify roles exactly what they need', async () => {
    const drained = await cli('drain', '--dsn', dsnAs(ctx.pair.subscriberDsn, 'sg_drainer'), '--json');
    expect(drained.code).toBe(0);
    await as('subscriber', 'sg_drainer', async (c) => {
      await expect(c.query('SELECT * FROM syncguard.bucket')).rejects.toThrow(/permission denied/);
      await expect(c.query('DELETE FROM syncguard.dirty')).rejects.toThrow(/permission denied/);
      await expect(c.query('SELECT syncguard.verify_ranges(64)')).rejects.toThrow(/permission denied/);
      await expect(c.query('SELECT syncguard.grant_role(current_user, $1)', ['verify'])).rejects.toThrow(/permission denied/);
    });
    const verified = await cli(
      'verify',
      '--publisher-dsn',
      dsnAs(ctx.pair.publisherDsn, 'sg_verifier'),
      '--subscriber-dsn',
      dsnAs(ctx.pair.subscriberDsn, 'sg_verifier'),
      '--json',
    );
    expect(verified.err).toEqual([]);
    const report = JSON.parse(verified.out[0] as string);
    expect([report.status, report.mismatches]).toEqual(['in_sync', []]);
    await as('publisher', 'sg_verifier', async (c) => {
      await expect(c.query('SELECT * FROM syncguard.registration')).rejects.toThrow(/permission denied/);
      await expect(c.query("SELECT syncguard.unregister_table('public', 'ledger')")).rejects.toThrow(/permission denied/);
    });
  });

  it('keeps range bounds (key values) away from roles that may not read the catalogue', async () => {
    const reg = await regId(ctx.sub, MEMBERS);
    const bucketOf = `syncguard."bucket_of_${reg}"`;
    const { rows: owner } = await ctx.sub.query<{ b: string }>(`SELECT ${bucketOf}('person500@example.com')::text AS b`);
    expect(Number(owner[0]?.b)).toBeGreaterThan(0);
    await as('subscriber', 'sg_connect', async (c) => {
      const { rows } = await c.query<{ src: string }>(
        "SELECT string_agg(prosrc, ' ') AS src FROM pg_proc WHERE pronamespace = 'syncguard'::regnamespace",
      );
      expect(rows[0]?.src).not.toMatch(/@example\.com/);
      await expect(c.query(`SELECT * FROM syncguard."bounds_${reg}"`)).rejects.toThrow(/permission denied/);
      // no oracle either: only the owner may call it
      await expect(c.query(`SELECT ${bucketOf}('person500@example.com') AS b`)).rejects.toThrow(/permission denied/);
    });
    // crash recovery empties the unlogged bounds table: buckets stay the same (from the registration)
    await ctx.sub.query(`TRUNCATE syncguard."bounds_${reg}"`);
    const { rows: after } = await ctx.sub.query<{ b: string }>(`SELECT ${bucketOf}('person500@example.com')::text AS b`);
    expect(after[0]?.b).toBe(owner[0]?.b);
    await ctx.pair.pub.query(`UPDATE ${MEMBERS} SET v = -v WHERE email = 'person500@example.com'`);
    await ctx.pair.catchUp();
    expect((await ctx.sub.query<{ b: string }>('SELECT bucket::text AS b FROM syncguard.dirty WHERE reg_id = $1', [reg])).rows).toEqual([
      { b: owner[0]?.b },
    ]);
  });
});
