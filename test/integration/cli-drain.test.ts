// `syncguard drain` and `syncguard status` through the CLI entry point.

import { describe, expect, it } from 'vitest';
import { cli } from '../support/cli.js';
import { register } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.events';

const ctx = usePair({
  label: 'clidrain',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id bigint PRIMARY KEY, kind text, at timestamptz)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'k' || (i % 5), now() FROM generate_series(1, 5000) i`);
  },
  ready: ({ pub, sub }) => register(pub, sub, T, { bucketSize: 250 }), // ids 1..5000: buckets 0..20
});

describe('syncguard drain / status', () => {
  it('drains, prints one JSON summary with --json, and says caught up in text', async () => {
    const j = await cli('drain', '--dsn', ctx.pair.publisherDsn, '--max-seconds', '30', '--json');
    expect(j.code).toBe(0);
    expect(j.out).toHaveLength(1);
    const s = JSON.parse(j.out[0] as string);
    expect(s).toMatchObject({ stoppedBecause: 'empty', remainingDirty: 0, sweepProgress: 1, bucketsRecomputed: 21, rowsHashed: 5000 });
    for (const k of ['oldestDirtyAgeMs', 'stateLost', 'fullResweepStarted', 'durationMs']) expect(s).toHaveProperty(k);

    const t = await cli('drain', '--dsn', ctx.pair.subscriberDsn);
    expect(t.code).toBe(0);
    expect(t.out.at(-2)).toBe('drain caught up: no dirty bucket left and every table swept');
  });

  it('starts a full re-sweep on request', async () => {
    const j = await cli('drain', '--dsn', ctx.pair.publisherDsn, '--full-resweep', '--json');
    expect(JSON.parse(j.out[0] as string)).toMatchObject({ fullResweepStarted: true, bucketsRecomputed: 21, stoppedBecause: 'empty' });
  });

  it('drains with several connections, each bucket recomputed once', async () => {
    await ctx.pair.pub.query(`UPDATE ${T} SET kind = kind || 'w'`); // every bucket dirty
    const j = await cli('drain', '--dsn', ctx.pair.publisherDsn, '--workers', '4', '--json');
    expect(JSON.parse(j.out[0] as string)).toMatchObject({
      stoppedBecause: 'empty',
      remainingDirty: 0,
      bucketsRecomputed: 21,
      rowsHashed: 5000,
    });
    const bad = await cli('drain', '--dsn', ctx.pair.publisherDsn, '--workers', '0');
    expect([bad.code, bad.err[0]]).toEqual([2, expect.stringMatching(/--workers must be a whole number from 1 to 16, got "0"/)]);
  });

  it('shows per-table status as a table and as JSON', async () => {
    await ctx.pair.pub.query(`UPDATE ${T} SET kind = 'x' WHERE id = 10`);
    const t = await cli('status', '--dsn', ctx.pair.publisherDsn);
    expect(t.code).toBe(0);
    expect(t.out[0]).toMatch(/^node [0-9a-f-]{36}: 1 dirty buckets, oldest mark \d/);
    const header = t.out.findIndex((l) => l.startsWith('table'));
    expect(t.out[header]).toMatch(/table\s+role\s+scheme\s+buckets\s+dirty\s+oldest dirty\s+sweep/);
    expect(t.out[header + 1]).toMatch(/^public\.events\s+publisher\s+int\s+21\s+1\s+\S+ m?s\s+100\.0 %/);
    const j = await cli('status', '--dsn', ctx.pair.publisherDsn, '--json');
    const s = JSON.parse(j.out[0] as string);
    expect(s.tables[0]).toMatchObject({ table: T, dirtyBuckets: 1, sweepProgress: 1, buckets: 21 });
  });

  const bad: Array<[string, string[], RegExp]> = [
    [
      'a zero time box',
      ['drain', '--dsn', 'postgres://x@127.0.0.1:1/x', '--max-seconds', '0'],
      /--max-seconds must be a positive number up to 86400 seconds, got "0"/,
    ],
    [
      'a negative time box',
      ['drain', '--dsn', 'postgres://x@127.0.0.1:1/x', '--max-seconds', '-3'],
      /--max-seconds must be a positive number/,
    ],
    ['no DSN', ['status'], /no DSN: pass --dsn or set SYNCGUARD_DSN/],
  ];
  it.each(bad)('refuses %s with exit 2', async (_what, args, message) => {
    const r = await cli(...args);
    expect(r.code).toBe(2);
    expect(r.err.join(' ')).toMatch(message);
  });

  it('tells how to install when the node has no syncguard schema', async () => {
    const bare = ctx.pair.publisherDsn.replace(/\/[^/]+$/, '/postgres');
    for (const cmd of ['drain', 'status']) {
      const r = await cli(cmd, '--dsn', bare);
      expect(r.code).toBe(2);
      expect(r.err).toEqual([
        expect.stringMatching(
          /^syncguard: syncguard is not installed on the database 127\.0\.0\.1:\d+\/postgres; run: syncguard install --dsn <database DSN>$/,
        ),
      ]);
    }
  });
});
