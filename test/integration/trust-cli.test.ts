// Issue 7, C11, C14, D15 and D16: no password in any output, the same database twice is refused,
// a frozen backend cannot hold a command past its time, a lost connection names its node, and the
// small messages: option ranges, --version, EPIPE, a small range table, TRUNCATE as a local write.

import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cli } from '../support/cli.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.accounts';
const SMALL = 'public.small';
const BIG = 'public.big';

const ctx = usePair({
  label: 'trust_cli',
  tables: [T, SMALL, BIG],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, v text); CREATE TABLE ${SMALL} (id uuid PRIMARY KEY);
                     CREATE TABLE ${BIG} (id int PRIMARY KEY, v text)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(1, 500) i;
                          INSERT INTO ${SMALL} SELECT gen_random_uuid() FROM generate_series(1, 20);
                          INSERT INTO ${BIG} SELECT i, md5(i::text) FROM generate_series(1, 300000) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 100 });
    await register(pub, sub, BIG, { bucketSize: 1000 });
    await settle(pub);
    await settle(sub);
  },
});

const pairArgs = () => ['--publisher-dsn', ctx.pair.publisherDsn, '--subscriber-dsn', ctx.pair.subscriberDsn];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pid of the syncguard CLI's backend on the subscriber, once it connected. */
async function cliBackend(): Promise<number> {
  const { rows: own } = await ctx.sub.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'); // the test's own connection
  for (let i = 0; i < 500; i++) {
    const { rows } = await ctx.pair.sub.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'syncguard' AND pid <> $1",
      [own[0]?.pid],
    );
    if (rows[0] !== undefined) return rows[0].pid;
    await sleep(10);
  }
  throw new Error('the CLI never connected');
}

describe('CLI under real operations', () => {
  it('never prints a password, in any DSN form', async () => {
    const secret = 'Zx9SecretPw';
    const host = `${ctx.pair.subscriber.host}:${ctx.pair.subscriber.port}`;
    const forms = [
      `postgres://sg_owner@${host}/${ctx.pair.name}?password=${secret}`,
      `postgres://sg_owner:${secret}@${host}/${ctx.pair.name}`,
      `postgres://sg_owner@${host}/${ctx.pair.name}?sslmode=disable&password=${secret}`,
    ];
    for (const dsn of forms) {
      const r = await cli('status', '--dsn', dsn);
      expect(r.code).toBe(2);
      expect([...r.out, ...r.err].join('\n')).not.toContain(secret);
      expect(r.err[0]).toMatch(
        /could not connect to the database 127\.0\.0\.1:\d+\/trust_cli_\w+ at postgres:\/\/sg_owner(:\*\*\*)?@.*password authentication failed/,
      );
    }
    const kv = await cli('status', '--dsn', `host=localhost password=${secret}`);
    expect(kv.err.join('\n')).not.toContain(secret);
    // the control-plane warning too
    const v = await cli('verify', ...pairArgs(), '--exclude', SMALL, '--control-dsn', `postgres://u@127.0.0.1:1/none?password=${secret}`);
    expect(v.code).toBe(0);
    expect(v.err.join('\n')).toMatch(/warning: the verdict was not recorded in the control plane/);
    expect([...v.out, ...v.err].join('\n')).not.toContain(secret);
  });

  it('refuses the same database as publisher and subscriber, and changes nothing', async () => {
    const ids = async () => (await ctx.pair.sub.query<{ id: string }>('SELECT syncguard.node_id()::text AS id')).rows[0]?.id;
    const before = await ids();
    for (const cmd of ['install', 'verify', 'register']) {
      const r = await cli(
        cmd,
        '--publisher-dsn',
        ctx.pair.subscriberDsn,
        '--subscriber-dsn',
        ctx.pair.subscriberDsn,
        ...(cmd === 'register' ? ['--table', T] : []),
      );
      expect(r.code).toBe(2);
      expect(r.err[0]).toMatch(/the publisher and subscriber DSNs name the same database/);
    }
    expect(await ids()).toBe(before);
  });

  it('ends a drain and a verify on time when the backend freezes, naming the node', async () => {
    const blocker = await ctx.pair.ownerClient('subscriber');
    try {
      for (const [args, limitMs, pattern] of [
        // a full re-sweep of 300,000 rows takes about a second: the backend freezes mid-drain
        [
          ['drain', '--dsn', ctx.pair.subscriberDsn, '--max-seconds', '3', '--full-resweep'],
          8000,
          /the database 127\.0\.0\.1:\d+\/trust_cli_\w+ did not answer within the time allowed/,
        ],
        // the apply waits behind a lock, so verify polls the subscriber at the barrier when it freezes
        [['verify', ...pairArgs(), '--time-limit', '3'], 20_000, /the subscriber did not answer within the time allowed/],
      ] as const) {
        if (args[0] === 'verify') {
          await blocker.query(`BEGIN; LOCK TABLE ${T} IN SHARE MODE`);
          await ctx.pair.pub.query(`UPDATE ${T} SET v = 'y' WHERE id = 2`);
        }
        const started = Date.now();
        const running = cli(...args);
        const pid = await cliBackend();
        await sleep(args[0] === 'verify' ? 300 : 100);
        process.kill(pid, 'SIGSTOP'); // a frozen backend: the server never answers, TCP stays up
        let r: Awaited<typeof running>;
        try {
          r = await running;
        } finally {
          process.kill(pid, 'SIGCONT');
          await ctx.pair.sub.query('SELECT pg_terminate_backend($1)', [pid]);
        }
        expect(Date.now() - started).toBeLessThan(limitMs);
        expect(r.code).toBe(2);
        expect(r.err.join('\n')).toMatch(pattern);
      }
    } finally {
      await blocker.query('ROLLBACK').catch(() => {});
      await blocker.close();
    }
    await ctx.pair.catchUp();
  });

  it('names the node whose connection was lost mid-verify, in one line', async () => {
    const blocker = await ctx.pair.ownerClient('subscriber');
    await blocker.query(`BEGIN; LOCK TABLE ${T} IN SHARE MODE`); // the apply stalls: verify waits at the barrier
    await ctx.pair.pub.query(`UPDATE ${T} SET v = 'x' WHERE id = 1`);
    try {
      const running = cli('verify', ...pairArgs(), '--time-limit', '20');
      const pid = await cliBackend();
      await sleep(500);
      await ctx.pair.sub.query('SELECT pg_terminate_backend($1)', [pid]);
      const r = await running;
      expect(r.code).toBe(2);
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).toMatch(/^syncguard: lost the connection to the subscriber: /);
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.close();
    }
    await ctx.pair.catchUp();
  });

  it('checks option ranges with clear messages', async () => {
    const cov = await cli('verify', ...pairArgs(), '--min-coverage', '150');
    expect([cov.code, cov.err[0]]).toEqual([2, expect.stringMatching(/--min-coverage must be a percentage from 0 to 100, got "150"/)]);
    const box = await cli('drain', '--dsn', ctx.pair.subscriberDsn, '--max-seconds', '99999999999');
    expect([box.code, box.err[0]]).toEqual([
      2,
      expect.stringMatching(/--max-seconds must be a positive number up to 86400 seconds, got "99999999999"/),
    ]);
  });

  it('prints its version, and stops quietly when the reader of its output goes away', () => {
    const v = spawnSync(process.execPath, ['bin/syncguard.js', '--version'], { encoding: 'utf8' });
    expect([v.status, v.stdout.trim()]).toEqual([0, expect.stringMatching(/^\d+\.\d+\.\d+$/)]);
    const piped = spawnSync(
      'bash',
      ['-c', `node bin/syncguard.js status --dsn "$DSN" | head -1 >/dev/null; echo "exit=\${PIPESTATUS[0]}"`],
      {
        encoding: 'utf8',
        env: { ...process.env, DSN: ctx.pair.subscriberDsn },
      },
    );
    expect(piped.stdout.trim()).toBe('exit=0');
    expect(piped.stderr).not.toMatch(/EPIPE|Error/);
  });

  it('says a range table smaller than one bucket is small, not empty', async () => {
    const r = await cli('register', ...pairArgs(), '--table', SMALL);
    expect(r.code).toBe(0);
    expect(r.out.join('\n')).toMatch(
      /note: the publisher table has at most 1000 rows \(the bucket size\), so it has a single range bucket/,
    );
  });

  it('records a TRUNCATE on the subscriber as a local write', async () => {
    await ctx.pair.sub.query(`TRUNCATE ${T}`);
    const { rows } = await ctx.sub.query<{ n: number }>('SELECT count(*)::int AS n FROM syncguard.local_write');
    expect(rows[0]?.n).toBeGreaterThan(0);
    const r = await cli('verify', ...pairArgs(), '--json', '--table', T);
    const report = JSON.parse(r.out[0] as string);
    expect(report.localWrites).toEqual([expect.objectContaining({ table: T, role: 'postgres' })]);
  });
});
