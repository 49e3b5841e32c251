// Issue 17 item 24, the messages: each as a user meets it on a first run, against a real pair.

import { afterAll, describe, expect, it, vi } from 'vitest';
import { cli } from '../support/cli.js';
import { usePair } from '../support/use-pair.js';

const LINES = 'public.lines';
const BAG = 'public.bag';
const ONE = 'public.one';

const ctx = usePair({
  label: 'messages',
  tables: [LINES, BAG, ONE],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${LINES} ("Line ""No""" int, "ключ" int, v text, PRIMARY KEY ("Line ""No""", "ключ"));
                     CREATE TABLE ${BAG} (v int) ; ALTER TABLE ${BAG} REPLICA IDENTITY FULL;
                     CREATE TABLE ${ONE} (id int PRIMARY KEY, v text)`);
    await pair.pub.query(`INSERT INTO ${LINES} VALUES (1, 1, 'a'); INSERT INTO ${BAG} VALUES (1), (1); INSERT INTO ${ONE} VALUES (1, 'a')`);
  },
});
const pairArgs = () => ['--publisher-dsn', ctx.pair.publisherDsn, '--subscriber-dsn', ctx.pair.subscriberDsn];
const role = () => `${ctx.pair.name}_norights`;

afterAll(async () => {
  await ctx.pair.sub.query(`DROP ROLE IF EXISTS ${role()}`).catch(() => {});
  await ctx.pair.sub.query(`DROP DATABASE IF EXISTS ${ctx.pair.name}_ctl WITH (FORCE)`).catch(() => {});
});

describe('CLI messages (item 24)', () => {
  it('writes key columns quoted where a name is not plain, and a table without a key as such', async () => {
    const lines = await cli('register', '--table', LINES, ...pairArgs());
    expect(lines.code, lines.err.join('\n')).toBe(0);
    expect(lines.out[0]).toMatch(/^registered public\.lines: key \("Line ""No""", "ключ"\), /);
    const bag = await cli('register', '--table', BAG, ...pairArgs());
    expect(bag.code, bag.err.join('\n')).toBe(0);
    expect(bag.out[0]).toMatch(/^registered public\.bag: no key \(rows compared as a multiset\), /);
    expect(bag.out[0]).not.toMatch(/key \(\)/);
  });

  it('says "1 row", not "1 rows", in a mismatch', async () => {
    expect((await cli('register', '--table', ONE, '--bucket-size', '10', ...pairArgs())).code).toBe(0);
    for (const dsn of [ctx.pair.publisherDsn, ctx.pair.subscriberDsn]) await cli('drain', '--dsn', dsn, '--max-seconds', '20');
    await ctx.pair.sub.query(`UPDATE ${ONE} SET v = 'changed' WHERE id = 1`);
    const r = await cli('verify', ...pairArgs(), '--table', ONE);
    expect(r.code, r.out.join('\n')).toBe(1);
    expect(r.out).toContainEqual(expect.stringMatching(/^ {2}mismatch public\.one bucket 0: publisher 1 row, subscriber 1 row \(/));
    await ctx.pair.sub.query(`UPDATE ${ONE} SET v = 'a' WHERE id = 1`);
  });

  it('answers --table X --all with "not both"', async () => {
    const r = await cli('register', '--table', LINES, '--all', ...pairArgs());
    expect([r.code, r.err[0]]).toEqual([
      2,
      'syncguard: give --table schema.table or --all, not both: --all registers every published table',
    ]);
  });

  it('offers the quoted form of a table name with spaces and dots', async () => {
    const r = await cli('verify', '--table', 'Sales.Order Items.v2', ...pairArgs());
    expect(r.code).toBe(2);
    expect(r.err[0]).toBe(
      'syncguard: table "Sales.Order Items.v2": unexpected "I" after "Order"; a name with spaces or other characters is written quoted, as PostgreSQL does, for example "Sales"."Order Items.v2"',
    );
  });

  it('names the node a raw PostgreSQL error came from (status as a role without rights)', async () => {
    await ctx.pair.sub.query(`CREATE ROLE ${role()} LOGIN PASSWORD 'pw'`);
    const { host, port } = ctx.pair.subscriber;
    const r = await cli('status', '--dsn', `postgres://${role()}:pw@${host}:${port}/${ctx.pair.name}`);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([
      expect.stringMatching(new RegExp(`^syncguard: the database ${host}:${port}/${ctx.pair.name} said: permission denied for `)),
    ]);
  });

  it('says verify was given swapped DSNs, instead of advising register --refresh', async () => {
    const r = await cli('verify', '--publisher-dsn', ctx.pair.subscriberDsn, '--subscriber-dsn', ctx.pair.publisherDsn);
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(/^syncguard: the publisher and subscriber DSNs are swapped: .*the other way round \(do not re-register\)$/);
    expect(r.err.join('\n')).not.toMatch(/--refresh/);
  });

  it('refuses install --control-dsn at a node database and install --dsn at the control-plane database', async () => {
    const node = await cli('install', '--control-dsn', ctx.pair.subscriberDsn);
    expect(node.code).toBe(2);
    expect(node.err[0]).toMatch(/the --control-dsn database \S+ holds a syncguard node schema .* needs a database of its own/);
    const { rows } = await ctx.pair.sub.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'syncguard_control'",
    );
    expect(rows[0]?.n).toBe(0);
    await ctx.pair.sub.query(`CREATE DATABASE ${ctx.pair.name}_ctl OWNER sg_owner`);
    const control = ctx.pair.subscriberDsn.replace(/\/([^/]+)$/, '/$1_ctl');
    expect((await cli('install', '--control-dsn', control)).code).toBe(0);
    const there = await cli('install', '--dsn', control);
    expect(there.code).toBe(2);
    expect(there.err[0]).toMatch(/the --dsn database is the control-plane database \(it holds syncguard_control\)/);
  });

  it('connects with a key=value DSN as pg/libpq does, and never prints its password', async () => {
    const u = new URL(ctx.pair.publisherDsn);
    const kv = (pw: string) =>
      `host=${u.hostname} port=${u.port} dbname=${u.pathname.slice(1)} user=${decodeURIComponent(u.username)} password='${pw}'`;
    const ok = await cli('status', '--dsn', kv(decodeURIComponent(u.password)));
    expect(ok.code, ok.err.join('\n')).toBe(0);
    const bad = await cli('status', '--dsn', kv('wr0ng p@ss'));
    expect(bad.code).toBe(2);
    expect(bad.err[0]).toMatch(/^syncguard: could not connect to the database .* at postgres:\/\/.*password authentication failed/);
    expect([...bad.out, ...bad.err].join('\n')).not.toMatch(/wr0ng|p@ss|p%40ss/);
  });

  it("says what sslmode=require means here in one line, without pg's SECURITY WARNING", async () => {
    const warnings = vi.spyOn(process, 'emitWarning');
    try {
      const r = await cli('status', '--dsn', `${ctx.pair.publisherDsn}?sslmode=require`);
      expect(r.code).toBe(2);
      expect(warnings.mock.calls.map((c) => String(c[0]))).not.toContainEqual(expect.stringMatching(/SECURITY WARNING/));
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).toMatch(
        /^syncguard: could not connect to the database .*\(sslmode=require here means verify-full, .*sslmode=no-verify/,
      );
    } finally {
      warnings.mockRestore();
    }
  });

  it('approve --function: refuses --control-dsn beside it, and names a missing AWS region', async () => {
    const both = await cli(
      'approve',
      '--plan',
      '1',
      '--function',
      'foo',
      '--checksum',
      `sha256:${'0'.repeat(64)}`,
      '--control-dsn',
      ctx.pair.subscriberDsn,
    );
    expect([both.code, both.err]).toEqual([
      2,
      [expect.stringMatching(/^syncguard: --function and --control-dsn are two ways to decide .*give one of them$/)],
    ]);
    // an approval signs the plan's checksum: the one the approver reviewed, never whatever the plan is now
    const blind = await cli('approve', '--plan', '1', '--function', 'foo');
    expect([blind.code, blind.err]).toEqual([
      2,
      [expect.stringMatching(/^syncguard: approving through --function needs --checksum .*nothing was sent$/)],
    ]);
    const saved = Object.fromEntries(
      ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE', 'AWS_CONFIG_FILE'].map((k) => [k, process.env[k]]),
    );
    delete process.env.AWS_REGION;
    delete process.env.AWS_DEFAULT_REGION;
    process.env.AWS_CONFIG_FILE = '/nonexistent/aws-config';
    try {
      const r = await cli('approve', '--plan', '1', '--function', 'foo', '--checksum', `sha256:${'0'.repeat(64)}`);
      expect(r.code).toBe(2);
      expect(r.err).toEqual([expect.stringMatching(/^syncguard: no AWS region for the approval function foo: set AWS_REGION /)]);
    } finally {
      for (const [k, v] of Object.entries(saved))
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
    }
  });

  it('names the node whose DSN gives an sslkey file that does not exist', async () => {
    const r = await cli('status', '--dsn', `${ctx.pair.publisherDsn}?sslkey=/missing/key.pem`);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([
      expect.stringMatching(
        /^syncguard: the database \S* ?DSN names a file that cannot be read \(\/missing\/key\.pem\): ENOENT; check the sslcert, sslkey/,
      ),
    ]);
  });

  it('names the node and says what to do when the DSN sets statement_timeout', async () => {
    const r = await cli('status', '--dsn', `${ctx.pair.publisherDsn}?options=${encodeURIComponent('-c statement_timeout=1')}`);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([
      expect.stringMatching(
        /^syncguard: the database \S+ said: canceling statement due to statement timeout; a statement_timeout set for this session .*remove or raise it/,
      ),
    ]);
  });
});
