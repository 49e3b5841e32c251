// The inspect / plan / approve / repair commands end to end, through the real CLI.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OWNER } from '../../dev/pair.js';
import { cli } from '../support/cli.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.orders';

const ctx = usePair({
  label: 'clirepair',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, total numeric(12,2), note text)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, i * 1.25, 'n' || i FROM generate_series(1, 3000) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 1000 });
    await settle(pub);
    await settle(sub);
  },
});

const pairArgs = () => ['--publisher-dsn', ctx.pair.publisherDsn, '--subscriber-dsn', ctx.pair.subscriberDsn];
const controlDsn = () => ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl');

beforeAll(async () => {
  await ctx.pair.pub.query(`CREATE DATABASE ${ctx.pair.name}_ctl OWNER ${OWNER}`);
  expect((await cli('install', '--control-dsn', controlDsn())).code).toBe(0);
});

afterAll(async () => {
  await ctx.pair.pub.query(`DROP DATABASE IF EXISTS ${ctx.pair.name}_ctl WITH (FORCE)`).catch(() => {});
});

describe('syncguard inspect, plan, approve, repair', () => {
  it('shows the row diff, changes nothing without --yes, and repairs with it', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET total = 0 WHERE id = 1234; DELETE FROM ${T} WHERE id = 1500`);
    const j = await cli('inspect', ...pairArgs(), '--table', T, '--bucket', '1', '--json');
    expect(j.code).toBe(0);
    expect(JSON.parse(j.out[0] as string).diffs).toEqual([
      { kind: 'changed', key: '(1234)', columns: [{ name: 'total', publisher: '1542.50', subscriber: '0.00' }] },
      { kind: 'missing_on_subscriber', key: '(1500)', columns: expect.any(Array) },
    ]);
    const text = await cli('inspect', ...pairArgs(), '--table', T, '--bucket', '1');
    expect(text.out[0]).toMatch(
      /^inspect public\.orders bucket 1: 1000 rows on the publisher, 999 on the subscriber, compared at publisher LSN \S+; 2 differences$/,
    );
    expect(text.out).toContain('    total: publisher "1542.50", subscriber "0.00"');

    const dry = await cli('repair', ...pairArgs(), '--table', T, '--bucket', '1', '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('dry run: nothing changed');
    expect(dry.out.some((l) => l.startsWith('INSERT INTO "public"."orders" ("id", "note", "total") VALUES (\'1500\''))).toBe(true);
    const noYes = await cli('repair', ...pairArgs(), '--table', T, '--bucket', '1');
    expect(noYes.out.at(-1)).toBe('nothing changed: add --yes to apply this plan');
    expect((await ctx.pair.sub.query(`SELECT count(*)::int AS n FROM ${T} WHERE id = 1500`)).rows).toEqual([{ n: 0 }]);

    const done = await cli('repair', ...pairArgs(), '--table', T, '--bucket', '1', '--yes');
    expect(done.code).toBe(0);
    expect(done.out[0]).toMatch(/^repair public\.orders bucket 1: 2 applied; bucket now equal/);
    expect((await cli('verify', ...pairArgs())).code).toBe(0);
  });

  it('stores a plan, applies it only once approved, and only once', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET note = 'x' WHERE id = 2500`);
    const planned = await cli('plan', ...pairArgs(), '--table', T, '--bucket', '2', '--control-dsn', controlDsn());
    expect(planned.code).toBe(0);
    const id = /stored as plan (\d+)/.exec(planned.out.at(-1) as string)?.[1] as string;
    const early = await cli('repair', ...pairArgs(), '--plan', id, '--control-dsn', controlDsn());
    expect([early.code, early.err[0]]).toEqual([2, `syncguard: plan ${id} is not approved; run syncguard approve --plan ${id}`]);
    const selfApproval = await cli('approve', '--plan', id, '--control-dsn', controlDsn(), '--four-eyes');
    expect(selfApproval.err[0]).toMatch(/four-eyes approval is on: db:sg_owner made plan \d+ and may not approve it/);
    expect((await cli('approve', '--plan', id, '--control-dsn', controlDsn(), '--comment', 'checked')).out[0]).toMatch(
      new RegExp(`^plan ${id} approved by db:sg_owner \\(checksum sha256:[0-9a-f]{64}\\)$`),
    );
    const applied = await cli('repair', ...pairArgs(), '--plan', id, '--control-dsn', controlDsn());
    expect(applied.code).toBe(0);
    const twice = await cli('repair', ...pairArgs(), '--plan', id, '--control-dsn', controlDsn());
    expect(twice.code).toBe(2);
    expect(twice.err[0]).toMatch(
      new RegExp(`^syncguard: plan ${id} was already applied by run run:[0-9a-f-]{36} \\(db:sg_owner\\); nothing to do$`),
    );
    expect((await cli('verify', ...pairArgs())).code).toBe(0);
  });

  it('SYNCGUARD_FOUR_EYES=true, yes or on turns four-eyes on for approve, as documented; a typo is refused (item 19)', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET note = 'x' WHERE id = 10`);
    const planned = await cli('plan', ...pairArgs(), '--table', T, '--bucket', '0', '--control-dsn', controlDsn());
    const id = /stored as plan (\d+)/.exec(planned.out.at(-1) as string)?.[1] as string;
    try {
      for (const v of ['true', 'yes', 'ON']) {
        process.env.SYNCGUARD_FOUR_EYES = v;
        const self = await cli('approve', '--plan', id, '--control-dsn', controlDsn());
        expect([v, self.code, self.err[0]]).toEqual([v, 2, expect.stringMatching(/four-eyes approval is on: db:sg_owner made plan \d+/)]);
      }
      process.env.SYNCGUARD_FOUR_EYES = 'maybe';
      const typo = await cli('approve', '--plan', id, '--control-dsn', controlDsn());
      expect([typo.code, typo.err[0]]).toEqual([
        2,
        'syncguard: SYNCGUARD_FOUR_EYES must be true or false (also accepted: 1/0, yes/no, on/off, in any case), got "maybe"',
      ]);
    } finally {
      delete process.env.SYNCGUARD_FOUR_EYES;
    }
    expect((await cli('approve', '--plan', id, '--control-dsn', controlDsn(), '--reject')).code).toBe(0);
    await ctx.pair.sub.query(`UPDATE ${T} SET note = 'n10' WHERE id = 10`);
  });
});
