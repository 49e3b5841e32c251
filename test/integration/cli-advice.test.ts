// Issue 17 item 24, first-run advice: what a user is told to run must work on the table as it is
// now (renamed, dropped, a trigger disabled, a bucket too large to read within the hold limit),
// and a node database given as the control plane is named as such. Against a real pair.

import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cli } from '../support/cli.js';
import { usePair } from '../support/use-pair.js';

const TABLES = ['public.old_name', 'public.gone', 'public.quiet', 'public.big_lines'];

const ctx = usePair({
  label: 'advice',
  tables: TABLES,
  async prepare(pair) {
    await pair.both(`CREATE TABLE public.old_name (id int PRIMARY KEY, v text);
                     CREATE TABLE public.gone (id int PRIMARY KEY, v text);
                     CREATE TABLE public.quiet (id int PRIMARY KEY, v text);
                     CREATE TABLE public.big_lines (order_id bigint, line int, v text, PRIMARY KEY (order_id, line))`);
    await pair.pub.query(`INSERT INTO public.old_name VALUES (1, 'a'); INSERT INTO public.gone VALUES (1, 'a');
                          INSERT INTO public.quiet VALUES (1, 'a');
                          INSERT INTO public.big_lines SELECT i / 4, i % 4, repeat('x', 40) FROM generate_series(0, 199999) i`);
  },
});
const pairArgs = () => ['--publisher-dsn', ctx.pair.publisherDsn, '--subscriber-dsn', ctx.pair.subscriberDsn];
const dbName = () => ctx.pair.name;

describe('first-run advice (item 24)', () => {
  it('registers the tables', async () => {
    for (const t of TABLES.slice(0, 3)) {
      const r = await cli('register', '--table', t, ...pairArgs());
      expect(r.code, r.err.join('\n')).toBe(0);
    }
    // one range bucket of 200,000 rows: too many to read and hash within the 50 ms hold limit
    const big = await cli('register', '--table', 'public.big_lines', '--bucket-size', '250000', ...pairArgs());
    expect(big.code, big.err.join('\n')).toBe(0);
    expect(big.out[0]).toMatch(/^registered public\.big_lines: .*range/);
    for (const dsn of [ctx.pair.publisherDsn, ctx.pair.subscriberDsn]) {
      const d = await cli('drain', '--dsn', dsn, '--max-seconds', '60');
      expect(d.code, d.err.join('\n')).toBe(0);
    }
  });

  it('after a rename, tells to register the table under the name it has now', async () => {
    await ctx.pair.both('ALTER TABLE public.old_name RENAME TO new_name');
    const r = await cli('verify', ...pairArgs(), '--table', 'public.old_name');
    const text = [...r.out, ...r.err].join('\n');
    expect(text).toMatch(
      /publisher: the registered table public\.old_name was renamed to public\.new_name; register it under its new name: syncguard unregister --table public\.old_name, then syncguard register --table public\.new_name/,
    );
    expect(text).not.toMatch(/(?<!un)register --table public\.old_name/);
    const inspect = await cli('inspect', '--table', 'public.old_name', '--bucket', '0', ...pairArgs());
    expect(inspect.code).toBe(2);
    expect(inspect.err.join('\n')).toMatch(/then syncguard register --table public\.new_name/);
    expect(inspect.err.join('\n')).not.toMatch(/(?<!un)register --table public\.old_name/);
  });

  it('after a drop, says it was dropped and gives the unregister command only', async () => {
    await ctx.pair.both('DROP TABLE public.gone');
    const r = await cli('verify', ...pairArgs(), '--table', 'public.gone');
    const text = [...r.out, ...r.err].join('\n');
    expect(text).toMatch(
      /subscriber: the table was dropped on this node; its registration is left over: remove it with syncguard unregister --table public\.gone(;|$| )/m,
    );
    expect(text).not.toMatch(/re-register|syncguard register --table public\.gone/);
  });

  it('says which changes a disabled trigger leaves untracked', async () => {
    await ctx.pair.sub.query('ALTER TABLE public.quiet DISABLE TRIGGER syncguard_update');
    const r = await cli('verify', ...pairArgs(), '--table', 'public.quiet');
    const text = [...r.out, ...r.err].join('\n');
    expect(text).not.toMatch(/all changes are not tracked/);
    expect(text).toMatch(
      /subscriber: trigger syncguard_update is disabled, not ENABLE ALWAYS, so it tracks no changes at all, neither local writes nor replicated changes \(/,
    );
    await ctx.pair.sub.query('ALTER TABLE public.quiet ENABLE ALWAYS TRIGGER syncguard_update');
  });

  it('plan --control-dsn at a node database names it and says what --control-dsn expects', async () => {
    const r = await cli('plan', '--table', 'public.quiet', '--bucket', '0', ...pairArgs(), '--control-dsn', ctx.pair.subscriberDsn);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([
      expect.stringMatching(
        new RegExp(
          `^syncguard: the --control-dsn database \\S+:\\d+/${dbName()} holds a syncguard node schema \\(it is a publisher or subscriber database\\); --control-dsn expects the control-plane database`,
        ),
      ),
    ]);
    const approve = await cli('approve', '--plan', '1', '--control-dsn', ctx.pair.publisherDsn);
    expect(approve.err).toEqual([expect.stringMatching(/^syncguard: the --control-dsn database \S+ holds a syncguard node schema/)]);
  });

  it('a range bucket over the hold limit: says it holds too many rows and how to split it', async () => {
    const r = await cli('inspect', '--table', 'public.big_lines', '--bucket', '0', ...pairArgs());
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toMatch(
      /cancelled and changed nothing \(bucket 0 holds 200000 rows, every one read and hashed under the lock; split it into smaller buckets: syncguard register --table public\.big_lines --refresh --bucket-size /,
    );
    expect(r.err.join('\n')).not.toMatch(/read whole/);
  });

  it("does not print the AWS SDK's Node version warning (bin/syncguard.js, approve --function)", () => {
    const { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: _, ...withoutSdkSwitch } = process.env;
    const r = spawnSync(
      process.execPath,
      ['bin/syncguard.js', 'approve', '--plan', '1', '--function', 'foo', '--checksum', `sha256:${'0'.repeat(64)}`],
      {
        encoding: 'utf8',
        env: {
          ...withoutSdkSwitch,
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: 'test',
          AWS_SECRET_ACCESS_KEY: 'test',
          AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
        },
      },
    );
    expect(r.status).toBe(2);
    // the SDK was used (it tried to reach the endpoint), and said nothing about the Node version
    expect(r.stderr).toMatch(/127\.0\.0\.1:9/);
    expect(r.stderr).not.toMatch(/NodeVersionSupportWarning|require node/);
  });
});
