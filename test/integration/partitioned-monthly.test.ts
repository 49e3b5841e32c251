// The case issue 11 names: a table with a composite key (timestamptz, int) and 12 monthly
// partitions on the publisher, held unpartitioned by the subscriber (a migration off
// partitioning; publish_via_partition_root = true). The root is registered; a changed, a deleted
// and an extra row in three different partitions are found exactly; a partition attached later
// with rows of its own (ATTACH is not replicated) is picked up, its rows found missing on the
// subscriber and repaired, and writes into it are tracked from then on.

import { describe, expect, it } from 'vitest';
import { cli } from '../support/cli.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.payment';
const months = Array.from({ length: 12 }, (_, i) => i + 1);
const monthStart = (m: number) => `2026-${String(m).padStart(2, '0')}-01`;

const ctx = usePair({
  label: 'monthly',
  tables: [T],
  publicationSql: (pair) => `CREATE PUBLICATION ${pair.name} FOR TABLE ${T} WITH (publish_via_partition_root = true)`,
  async prepare(pair) {
    await pair.asOwner(
      'publisher',
      `CREATE TABLE payment (paid_at timestamptz NOT NULL, payment_id int NOT NULL, amount numeric(10,2), customer text,
                             PRIMARY KEY (paid_at, payment_id)) PARTITION BY RANGE (paid_at);
       ${months
         .map(
           (m) =>
             `CREATE TABLE payment_m${m} PARTITION OF payment FOR VALUES FROM ('${monthStart(m)} 00:00+00') TO ('${m === 12 ? '2027-01-01' : monthStart(m + 1)} 00:00+00');`,
         )
         .join('\n')}`,
    );
    await pair.asOwner(
      'subscriber',
      `CREATE TABLE payment (paid_at timestamptz NOT NULL, payment_id int NOT NULL, amount numeric(10,2), customer text,
                             PRIMARY KEY (paid_at, payment_id))`,
    );
    // 6,000 payments spread over the year, every partition holding about 500
    await pair.pub.query(`INSERT INTO payment
      SELECT timestamptz '2026-01-01 00:00+00' + (i * 5227 % 525600) * interval '1 minute', i, (i % 997) / 4.0, 'c' || (i % 300)
        FROM generate_series(1, 6000) i`);
  },
});

const pairArgs = () => ['--publisher-dsn', ctx.pair.publisherDsn, '--subscriber-dsn', ctx.pair.subscriberDsn];
const drainBoth = async () => {
  for (const dsn of [ctx.pair.publisherDsn, ctx.pair.subscriberDsn])
    expect((await cli('drain', '--dsn', dsn, '--max-seconds', '30')).code).toBe(0);
};
type Verdict = { status: string; reasons: string[]; mismatches: { table: string; bucket: string }[] };
const verify = async (): Promise<Verdict> => JSON.parse((await cli('verify', ...pairArgs(), '--json')).out[0] as string);
const inspect = async (bucket: string) =>
  JSON.parse((await cli('inspect', ...pairArgs(), '--table', T, '--bucket', bucket, '--json')).out[0] as string) as {
    diffs: { kind: string; key: string }[];
  };

describe('a monthly-partitioned table migrated to an unpartitioned subscriber', () => {
  it('registers the root over 12 partitions and verifies in sync', async () => {
    const { rows } = await ctx.pair.pub.query("SELECT count(*)::int AS n FROM pg_partition_tree('payment') WHERE isleaf");
    expect(rows[0]?.n).toBe(12);
    const r = await cli('register', '--table', T, '--bucket-size', '250', ...pairArgs());
    expect(r.err).toEqual([]);
    expect(r.out.join('\n')).toMatch(/partitioned on the publisher/);
    await drainBoth();
    expect((await verify()).status).toBe('in_sync');
  });

  it('finds a changed, a deleted and an extra row in three partitions, exactly', async () => {
    const key = async (month: number) =>
      (
        await ctx.pair.pub.query<{ paid_at: string; payment_id: number }>(
          `SELECT paid_at::text, payment_id FROM payment_m${month} ORDER BY payment_id LIMIT 1`,
        )
      ).rows[0] as { paid_at: string; payment_id: number };
    const [feb, jun] = [await key(2), await key(6)]; // and an extra row in October
    await ctx.pair.sub.query('UPDATE payment SET amount = amount + 0.01 WHERE paid_at = $1 AND payment_id = $2', [
      feb.paid_at,
      feb.payment_id,
    ]);
    await ctx.pair.sub.query('DELETE FROM payment WHERE paid_at = $1 AND payment_id = $2', [jun.paid_at, jun.payment_id]);
    await ctx.pair.sub.query("INSERT INTO payment VALUES ('2026-10-15 12:00+00', 999999, 1, 'ghost')");
    const v = await verify();
    expect(v.status).toBe('diverged');
    expect(v.mismatches).toHaveLength(3);
    const kinds = new Map<string, string>();
    for (const m of v.mismatches) for (const d of (await inspect(m.bucket)).diffs) kinds.set(d.key, d.kind);
    expect([...kinds.values()].sort()).toEqual(['changed', 'extra_on_subscriber', 'missing_on_subscriber']);
    expect([...kinds.keys()].find((k) => kinds.get(k) === 'changed')).toContain(String(feb.payment_id));
    expect([...kinds.keys()].find((k) => kinds.get(k) === 'missing_on_subscriber')).toContain(String(jun.payment_id));
    expect([...kinds.keys()].find((k) => kinds.get(k) === 'extra_on_subscriber')).toContain('999999');
    for (const m of v.mismatches) {
      const r = await cli('repair', ...pairArgs(), '--table', T, '--bucket', m.bucket, '--yes');
      expect(r.out[0]).toMatch(/: 1 applied; bucket now equal/);
    }
    expect((await verify()).status).toBe('in_sync');
  });

  it('picks up a partition attached later with rows, finds them missing on the subscriber, and tracks it', async () => {
    await ctx.pair.asOwner(
      'publisher',
      `CREATE TABLE payment_2027_01 (paid_at timestamptz NOT NULL, payment_id int NOT NULL, amount numeric(10,2), customer text,
                                     PRIMARY KEY (paid_at, payment_id));
       INSERT INTO payment_2027_01 SELECT timestamptz '2027-01-02 00:00+00' + i * interval '1 hour', 10000 + i, i, 'jan'
         FROM generate_series(1, 40) i;
       ALTER TABLE payment ATTACH PARTITION payment_2027_01 FOR VALUES FROM ('2027-01-01 00:00+00') TO ('2027-02-01 00:00+00');`,
    );
    const stale = await verify();
    expect(stale.status).toBe('incomplete'); // the publisher's partitions changed since its last drain
    expect(stale.reasons.join('\n')).toMatch(
      /publisher: partitions were attached, created, detached or dropped since the last drain \(now 13, were 12\)/,
    );
    await drainBoth(); // adopts the partition and sweeps the table again
    const status = JSON.parse((await cli('status', '--dsn', ctx.pair.publisherDsn, '--json')).out[0] as string);
    expect(status.tables[0].partitions.lastChange.added).toEqual(['public.payment_2027_01']);

    // ATTACH is not replicated: the 40 rows are missing on the subscriber, found in their bucket
    const v = await verify();
    expect(v.status).toBe('diverged');
    const missing = [];
    for (const m of v.mismatches) missing.push(...(await inspect(m.bucket)).diffs);
    expect(missing).toHaveLength(40);
    expect(new Set(missing.map((d) => d.kind))).toEqual(new Set(['missing_on_subscriber']));
    for (const m of v.mismatches) {
      const r = await cli('repair', ...pairArgs(), '--table', T, '--bucket', m.bucket, '--yes');
      expect(r.err).toEqual([]);
    }
    expect((await verify()).status).toBe('in_sync');

    // writes into the new partition are replicated and tracked; a local change to its rows is found
    await ctx.pair.pub.query('UPDATE payment_2027_01 SET amount = amount * 2 WHERE payment_id % 3 = 0');
    await ctx.pair.catchUp();
    expect((await verify()).status).toBe('in_sync');
    await ctx.pair.sub.query('DELETE FROM payment WHERE payment_id = 10007');
    const last = await verify();
    expect(last.status).toBe('diverged');
    expect((await inspect((last.mismatches[0] as { bucket: string }).bucket)).diffs).toEqual([
      expect.objectContaining({ kind: 'missing_on_subscriber', key: expect.stringContaining('10007') }),
    ]);
  });
});
