// Hierarchical verification against real nodes (issue 12): the node's range digests are the ones
// the pure core computes; an in-sync table is settled by its totals alone; with differences, the
// verifier reads bucket detail for exactly the differing buckets, and a number of ranges that grows
// with the differences, not with the catalogue.

import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import { rangeDigest } from '../../functions/core/verify-levels.js';
import { readLevel } from '../../functions/db/catalogue.js';
import type { Client } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.levels';

const ctx = usePair({
  label: 'levels',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, v text)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, md5(i::text) FROM generate_series(0, 39999) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 10 }); // 4,000 buckets
    await settle(pub);
    await settle(sub);
  },
});

/** The verifier's calls to the catalogue functions, with their arguments. */
function recording(c: Client): { client: Client; calls: { sql: string; params: unknown[] }[] } {
  const calls: { sql: string; params: unknown[] }[] = [];
  const original = c.query.bind(c) as (...args: unknown[]) => Promise<pg.QueryResult>;
  const client = new Proxy(c, {
    get(target, prop, receiver) {
      if (prop !== 'query') return Reflect.get(target, prop, receiver);
      return (...args: unknown[]) => {
        if (typeof args[0] === 'string') calls.push({ sql: args[0], params: (args[1] as unknown[]) ?? [] });
        return original(...args);
      };
    },
  });
  return { client, calls };
}

describe('hierarchical verification', () => {
  it('computes the same range digests on the node as the core', async () => {
    const level = await readLevel(ctx.pub, parseTableName(T), 256n, null);
    const { rows } = await ctx.pub.query<{ r: string; n: string; rows: string; s: string }>(
      `SELECT (b.bucket / 256)::text AS r, count(*)::text AS n, sum(b.row_count)::text AS rows, sum(b.hash_sum)::text AS s
         FROM syncguard.bucket b JOIN syncguard.registrations g USING (reg_id) WHERE g.table_name = 'levels' GROUP BY 1`,
    );
    expect(rows.length).toBe(16);
    for (const r of rows) {
      expect(level.get(r.r)).toEqual({ buckets: Number(r.n), digest: rangeDigest({ rows: BigInt(r.rows), sum: BigInt(r.s) }) });
    }
    // within parents only
    const child = await readLevel(ctx.pub, parseTableName(T), 16n, { width: 256n, ranges: ['3'] });
    expect([...child.keys()].sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 16 }, (_, i) => String(48 + i)));
  });

  it('settles an in-sync table by its totals, reading no level and no bucket', async () => {
    const p = recording(ctx.pub);
    const s = recording(ctx.sub);
    const r = await verifyPair(p.client, s.client, { table: parseTableName(T) });
    expect(r.status).toBe('in_sync');
    expect(r.tables[0]?.bucketsCompared).toBe(4000);
    for (const side of [p, s]) expect(side.calls.filter((c) => /verify_level|verify_buckets/.test(c.sql))).toEqual([]);
  });

  it('reads the detail of exactly the differing buckets, and a few ranges per level', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id IN (5, 20015, 39990)`); // buckets 0, 2001, 3999
    const p = recording(ctx.pub);
    const s = recording(ctx.sub);
    const r = await verifyPair(p.client, s.client, { table: parseTableName(T), deadline: Deadline.after(20_000) });
    expect(r.status).toBe('diverged');
    expect(r.mismatches.map((m) => m.bucket).sort()).toEqual(['0', '2001', '3999']);
    const detail = s.calls.filter((c) => c.sql.includes('verify_buckets'));
    expect(detail[0]?.params[2]).toEqual(['0', '2001', '3999']);
    // 4,000 buckets: a start level of at most 4 ranges, then 4 children of each differing range, per side
    const levels = s.calls.filter((c) => c.sql.includes('verify_level'));
    expect(levels.map((c) => c.params[2])).toEqual(['1024', '256', '64', '16', '4', '1']);
    expect(levels[5]?.params[4]).toHaveLength(3);
    for (const l of levels.slice(2)) expect((l.params[4] as string[]).length).toBeLessThanOrEqual(3);
    await ctx.pair.sub.query(`UPDATE ${T} SET v = md5(id::text) WHERE id IN (5, 20015, 39990)`);
  });
});
