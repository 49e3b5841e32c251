// Issue 17 items 20 and 21: `register --refresh` checks everything before it changes anything and
// then replaces the registration in one step; a published table that is not monitored keeps
// verify from "in sync" unless the user leaves it out; `unregister` refuses the same database
// twice (however its DSNs are spelled), and a table registered again after unregister needs no
// repeat of its original options.

import { describe, expect, it } from 'vitest';
import type { Client } from '../../functions/db/connect.js';
import { cli } from '../support/cli.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.items';
const LATER = 'public.later';

const ctx = usePair({
  label: 'refresh',
  tables: [T, LATER],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, v text); CREATE TABLE ${LATER} (id int PRIMARY KEY)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(1, 300) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 50 });
    await settle(pub);
    await settle(sub);
  },
});

const pairArgs = () => ['--publisher-dsn', ctx.pair.publisherDsn, '--subscriber-dsn', ctx.pair.subscriberDsn];

/** A node's registration of T and its triggers: what a refusal must leave as it was. */
async function held(c: Client): Promise<string> {
  const { rows } = await c.query<{ s: string }>(
    `SELECT coalesce((SELECT fingerprint || '/' || reg_id || '/' || coalesce(bucket_width::text, '-') FROM syncguard.registrations
                       WHERE schema_name = 'public' AND table_name = 'items'), 'none')
            || ' triggers ' || (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.items'::regclass AND tgname LIKE 'syncguard%') AS s`,
  );
  return rows[0]?.s as string;
}
const both = async () => [await held(ctx.pair.pub), await held(ctx.pair.sub)];

describe('register --refresh changes nothing when it refuses (item 20)', () => {
  it('refuses a missing column, swapped DSNs and the same database twice, leaving both registrations whole', async () => {
    const before = await both();
    expect(before[0]).toMatch(/^[\w-]+\/\d+\/50 triggers [1-9]/);
    const cases: Array<[string[], RegExp]> = [
      [[...pairArgs(), '--columns', 'nosuch'], /column nosuch does not exist in the publisher table public\.items/],
      [
        ['--publisher-dsn', ctx.pair.subscriberDsn, '--subscriber-dsn', ctx.pair.publisherDsn],
        /the database given as the publisher holds public\.items registered as the subscriber: are the publisher and subscriber DSNs swapped\? Nothing was changed/,
      ],
      [
        ['--publisher-dsn', ctx.pair.publisherDsn, '--subscriber-dsn', ctx.pair.publisherDsn],
        /the publisher and subscriber DSNs name the same database/,
      ],
    ];
    for (const [args, refusal] of cases) {
      const r = await cli('register', '--table', T, '--refresh', ...args);
      expect(r.code, r.err.join('\n')).toBe(2);
      expect(r.err.join('\n')).toMatch(refusal);
      expect(await both()).toEqual(before);
    }
  });

  it('refreshes in one step: a new registration on both nodes, with the bucket size it had', async () => {
    const before = await both();
    await ctx.pair.both(`ALTER TABLE ${T} ADD COLUMN extra int`);
    const r = await cli('register', '--table', T, '--refresh', ...pairArgs());
    expect(r.code, r.err.join('\n')).toBe(0);
    expect(r.out.join('\n')).toMatch(/registered again with the columns the table has now/);
    const after = await both();
    expect(after[0]).not.toEqual(before[0]);
    expect(after[0]).toMatch(/\/50 triggers [1-9]/);
    expect(after[0]?.split('/')[0]).toEqual(after[1]?.split('/')[0]); // the same fingerprint on both
    await settle(ctx.pub);
    await settle(ctx.sub);
  });
});

describe('a published table that is not monitored (item 20)', () => {
  it('makes verify incomplete (exit 3), saying so in the headline, unless it is excluded', async () => {
    const r = await cli('verify', ...pairArgs());
    expect(r.code, r.out.join('\n')).toBe(3);
    expect(r.out[0]).toMatch(
      /^verify: INCOMPLETE: no verdict \(public\.later is published but not monitored, so the verdict cannot cover it: register it \(syncguard register --table public\.later\), or leave it out with --exclude public\.later\)/,
    );
    const json = JSON.parse((await cli('verify', ...pairArgs(), '--json')).out[0] as string);
    expect([json.status, json.unmonitored, json.excluded]).toEqual(['incomplete', ['public.later'], []]);

    const ex = await cli('verify', ...pairArgs(), '--exclude', 'public.later');
    expect(ex.code, ex.out.join('\n')).toBe(0);
    expect(ex.out[0]).toMatch(/^verify: IN SYNC as of publisher LSN \S+ for 1 table \(left out by --exclude: public\.later\)/);

    const one = await cli('verify', ...pairArgs(), '--table', T);
    expect(one.code).toBe(0);
    expect(one.out[0]).toMatch(/^verify: IN SYNC as of publisher LSN \S+ for public\.items only \(--table\)/);
  });
});

describe('unregister and register again (item 21)', () => {
  it('refuses the same database twice, also as 127.0.0.1 and localhost, and removes nothing', async () => {
    const before = await both();
    const local = ctx.pair.publisherDsn.replace('127.0.0.1', 'localhost');
    expect(local).not.toBe(ctx.pair.publisherDsn);
    for (const [p, s] of [
      [ctx.pair.publisherDsn, ctx.pair.publisherDsn],
      [ctx.pair.publisherDsn, local],
    ] as const) {
      const r = await cli('unregister', '--table', T, '--publisher-dsn', p, '--subscriber-dsn', s);
      expect(r.code).toBe(2);
      expect(r.err.join('\n')).toMatch(/the publisher and subscriber DSNs name the same database/);
      expect(await both()).toEqual(before);
    }
  });

  it('registers again without repeating the bucket size when one node lost its registration', async () => {
    const before = await both();
    await ctx.pair.pub.query("SELECT syncguard.unregister_table('public', 'items')"); // what the old unregister did
    const r = await cli('register', '--table', T, ...pairArgs());
    expect(r.code, r.err.join('\n')).toBe(0);
    expect(r.out[0]).toBe('registered public.items: key (id), int buckets, 50 keys per bucket');
    const after = await both();
    expect(after[1]).toEqual(before[1]); // the subscriber's registration was kept as it was
    expect(after[0]?.split('/')[0]).toEqual(before[0]?.split('/')[0]); // the publisher's has the same fingerprint again
    await settle(ctx.pub);
  });

  it('register --all says "already registered" for a table registered with a non-default bucket size (item 24)', async () => {
    const r = await cli('register', '--all', ...pairArgs());
    expect(r.code, r.out.join('\n')).toBe(0);
    expect(r.out).toContain('public.items: already registered (key (id), int buckets, 50 keys per bucket)');
  });
});
