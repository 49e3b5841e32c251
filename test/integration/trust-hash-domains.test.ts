// Issue 17 item 3: hash version 2 casts a domain to its base type's bare name, and `character` /
// `bit` mean char(1) / bit(1): a change after the first character or bit of a domain over char(n)
// or bit(n) was invisible (verify said in sync). Such a table is registered with version 1 (and
// says why), --hash-version 2 is refused, and an existing version 2 registration of one is not
// compared: verify and status name the command that moves it.

import { describe, expect, it } from 'vitest';
import { TableRef } from '../../functions/core/identifiers.js';
import { buildConfig, layoutFor, planRegistration } from '../../functions/core/registration.js';
import { Deadline } from '../../functions/db/deadline.js';
import { describeTable, subscribedPublications } from '../../functions/db/register.js';
import { nodeStatus } from '../../functions/db/status.js';
import { registerOnPair } from '../../functions/flows/pair-setup.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { cli } from '../support/cli.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const DOMAINS = 'CREATE DOMAIN ccy AS char(3); CREATE DOMAIN flags AS bit(4); CREATE DOMAIN ccy2 AS ccy;';
const table = (t: string) => `CREATE TABLE ${t} (id int PRIMARY KEY, cur ccy, f flags, n int);`;
const fill = (t: string) => `INSERT INTO ${t} SELECT i, 'USD', B'0010', i FROM generate_series(1, 200) i;`;
const TABLES = ['public.acc', 'public.old_v2', 'public.asked', 'public.plain'];

const ctx = usePair({
  label: 'trust_dom',
  tables: TABLES,
  async prepare(pair) {
    await pair.both(
      `${DOMAINS}${table('public.acc')}${table('public.old_v2')}CREATE TABLE public.asked (id int PRIMARY KEY, c ccy2);
       CREATE TABLE public.plain (id int PRIMARY KEY, c char(3), v varchar(5), t timestamp(1));`,
    );
    await pair.asOwner(
      'publisher',
      `${fill('public.acc')}${fill('public.old_v2')}INSERT INTO public.asked VALUES (1, 'EUR');
       INSERT INTO public.plain VALUES (1, 'USD', 'abc', now());`,
    );
  },
});

const verifyOne = (t: string) => verifyPair(ctx.pub, ctx.sub, { deadline: Deadline.after(20_000), table: TableRef.of('public', t) });

describe('hash version 2 and domains over char(n) / bit(n)', () => {
  it('registers such a table with version 1, says why, and finds USD -> UGX and 0010 -> 1110 on the subscriber', async () => {
    const r = await register(ctx.pub, ctx.sub, 'public.acc', { bucketSize: 50 });
    expect(r.config.hashVersion).toBe(1);
    expect(r.notes.join('\n')).toMatch(
      /hash version 1, not the default 2: version 2 reads column cur \(.*ccy, a domain over character\(3\)\)/,
    );
    expect(r.notes.join('\n')).toMatch(/column f \(.*flags, a domain over bit\(4\)\)/);
    await settle(ctx.pub);
    await settle(ctx.sub);
    expect((await verifyOne('acc')).status).toBe('in_sync');
    await ctx.pair.sub.query(`UPDATE public.acc SET cur = 'UGX' WHERE id = 10; UPDATE public.acc SET f = B'1110' WHERE id = 120`);
    const v = await verifyOne('acc');
    expect(v.status).toBe('diverged');
    expect(v.mismatches.map((m) => m.bucket).sort()).toEqual(['0', '2']);
  });

  it('refuses --hash-version 2 for such a table, naming the column, and registers nothing', async () => {
    await expect(register(ctx.pub, ctx.sub, 'public.asked', { hashVersion: 2 })).rejects.toThrow(
      /cannot use hash version 2: it reads column c \(.*ccy2, a domain over character\(3\)\) back truncated/,
    );
    const { rows } = await ctx.pub.query("SELECT 1 FROM syncguard.registrations WHERE table_name = 'asked'");
    expect(rows).toHaveLength(0);
  });

  it('keeps version 2 for plain char(n), varchar(n) and timestamp(p) columns (not truncated)', async () => {
    expect((await register(ctx.pub, ctx.sub, 'public.plain')).config.hashVersion).toBe(2);
  });

  it('flags an existing version 2 registration in verify and status, with the command that moves it', async () => {
    // a registration made before this fix: the same config register_table wrote, at version 2
    const t = TableRef.of('public', 'old_v2');
    const publications = await subscribedPublications(ctx.pub, ctx.sub);
    const input = {
      publisher: await describeTable(ctx.pub, t, publications, 'publisher'),
      subscriber: await describeTable(ctx.sub, t, [], 'subscriber'),
      publications,
      hashVersion: 2 as const,
    };
    const config = buildConfig(input, planRegistration(input), layoutFor('int', 50, 0, []));
    for (const [c, role] of [
      [ctx.sub, 'subscriber'],
      [ctx.pub, 'publisher'],
    ] as const)
      await c.query('SELECT syncguard.register_table($1, $2)', [JSON.stringify(config), role]);
    await settle(ctx.pub);
    await settle(ctx.sub);
    await ctx.pair.sub.query(`UPDATE public.old_v2 SET cur = 'UGX' WHERE id = 10`);
    const move = 'syncguard register --table public.old_v2 --refresh --hash-version 1';
    const v = await verifyOne('old_v2');
    expect(v.status).toBe('incomplete');
    expect(v.tables[0]?.state).toBe('uncomparable');
    expect(v.tables[0]?.reason).toContain(move);
    const s = await nodeStatus(ctx.pub);
    expect(s.tables.find((x) => x.table === 'public.old_v2')?.hashProblem).toContain(move);
    const out = await cli('status', '--dsn', ctx.pair.subscriberDsn);
    expect(out.out.join('\n')).toContain(`public.old_v2: warning: hash version 2 reads column cur`);
    // registering it again without a version keeps it, and says how to move it
    expect((await register(ctx.pub, ctx.sub, 'public.old_v2', { bucketSize: 50 })).notes.join('\n')).toContain(move);
    // the command moves it, and the subscriber's change is found
    const r = await registerOnPair(ctx.pub, ctx.sub, { table: t, refresh: true, hashVersion: 1 });
    expect(r.config.hashVersion).toBe(1);
    await settle(ctx.pub);
    await settle(ctx.sub);
    const after = await verifyOne('old_v2');
    expect(after.status).toBe('diverged');
    expect(after.mismatches.map((m) => m.bucket)).toEqual(['0']);
  });
});
