// The CLI against real databases: install, register and unregister work; every kind of bad
// input gives exit code 2, one specific line on stderr without the password, and changes nothing.

import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createPair, type Pair } from '../../dev/pair.js';
import type { Client } from '../../functions/db/connect.js';
import { cli } from '../support/cli.js';

let pair: Pair;

const pairArgs = () => ['--publisher-dsn', pair.publisherDsn, '--subscriber-dsn', pair.subscriberDsn];

async function state(c: Client): Promise<{ registrations: number; triggers: number }> {
  const { rows } = await c.query<{ r: number; t: number }>(
    `SELECT (SELECT count(*)::int FROM syncguard.registrations) AS r,
            (SELECT count(*)::int FROM pg_trigger WHERE tgname LIKE 'syncguard%' AND tgrelid <> 'syncguard.probe'::regclass) AS t`,
  );
  return { registrations: rows[0]?.r ?? -1, triggers: rows[0]?.t ?? -1 };
}

beforeAll(async () => {
  pair = await createPair(inject('publisherCluster'), inject('subscriberCluster'), 'cli');
  await pair.both(`CREATE TABLE public.good (id int PRIMARY KEY, v text);
                   CREATE TABLE public.nokey (v int);
                   CREATE TABLE public.floaty (k float8 PRIMARY KEY, v int);`);
  await pair.pub.query("INSERT INTO public.good SELECT i, 'v' || i FROM generate_series(1, 50) i");
  await pair.asOwner('subscriber', 'ALTER TABLE public.nokey ADD PRIMARY KEY (v)'); // a key on one side only
  await pair.subscribe(['public.good', 'public.nokey', 'public.floaty']);
});

afterAll(async () => {
  await pair?.dispose();
});

describe('syncguard CLI', () => {
  it('prints help through the installed bin entry', () => {
    const r = spawnSync(process.execPath, ['bin/syncguard.js', '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/install/);
    expect(r.stdout).toMatch(/register/);
  });

  it('installs on a pair', async () => {
    const r = await cli('install', ...pairArgs());
    expect(r.code).toBe(0);
    expect(r.out[0]).toMatch(/^subscriber: syncguard schema installed to version \d+/);
    expect(r.out[1]).toMatch(/^publisher: syncguard schema installed to version \d+/);
    expect((await cli('install', '--dsn', pair.publisherDsn)).out[0]).toMatch(/up to date/);
  });

  const bad: Array<[string, string[], RegExp]> = [
    [
      'an unquoted table name with a semicolon',
      ['--table', 'public.good;drop table good'],
      /"good;drop" is not a plain name .* quote it as PostgreSQL does: "good;drop"/,
    ],
    [
      'a quoted name of a table that does not exist',
      ['--table', 'public."good;drop table good"'],
      /table public\.good;drop table good does not exist on the publisher/,
    ],
    ['an unterminated quoted name', ['--table', 'public."good'], /unterminated quoted name/],
    ['a table name with two dots', ['--table', 'a.b.c'], /more than one dot/],
    ['an unknown table', ['--table', 'public.missing'], /table public\.missing does not exist on the publisher/],
    [
      'a column list naming a missing column',
      ['--table', 'public.good', '--columns', 'v,nope'],
      /column nope does not exist in the publisher table public\.good/,
    ],
    [
      'a table with a key on one side only',
      ['--table', 'public.nokey'],
      /has no key on the publisher but one on the subscriber; give both the same primary key, or neither/,
    ],
    [
      'a key type that cannot be bucketed',
      ['--table', 'public.floaty'],
      /key column k has type double precision, which syncguard cannot bucket/,
    ],
    ['a zero bucket size', ['--table', 'public.good', '--bucket-size', '0'], /--bucket-size must be a positive integer/],
    [
      'a column name with a semicolon',
      ['--table', 'public.good', '--columns', 'v;'],
      /"v;" is not a plain name .* quote it as PostgreSQL does: "v;"/,
    ],
    [
      'an unknown bucket scheme',
      ['--table', 'public.good', '--bucket-scheme', 'zigzag'],
      /argument 'zigzag' is invalid. Allowed choices are int, range, hash/,
    ],
  ];

  it.each(bad)('refuses %s with exit 2 and changes nothing', async (_what, args, message) => {
    const r = await cli('register', ...pairArgs(), ...args);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(message);
    expect(await state(pair.pub)).toEqual({ registrations: 0, triggers: 0 });
    expect(await state(pair.sub)).toEqual({ registrations: 0, triggers: 0 });
  });

  it('refuses a wrong password without printing it', async () => {
    const wrong = pair.publisherDsn.replace(/:[^:@/]+@/, ':Sup3rSecretWrong@');
    const r = await cli('register', '--publisher-dsn', wrong, '--subscriber-dsn', pair.subscriberDsn, '--table', 'public.good');
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(
      /could not connect to the publisher at postgres:\/\/sg_owner:\*\*\*@127\.0\.0\.1.*password authentication failed/,
    );
    expect(r.err.join('\n')).not.toContain('Sup3rSecretWrong');
  });

  it('refuses a DSN that is neither a URL nor key=value pairs, and missing DSNs', async () => {
    const r = await cli('install', '--dsn', 'host localhost user x password hunter2');
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(/the database DSN is neither a URL nor key=value pairs/);
    expect(r.err[0]).not.toContain('hunter2');
    const saved = [process.env.SYNCGUARD_PUBLISHER_DSN, process.env.SYNCGUARD_SUBSCRIBER_DSN];
    delete process.env.SYNCGUARD_PUBLISHER_DSN;
    const m = await cli('register', '--table', 'public.good');
    expect(m.code).toBe(2);
    expect(m.err[0]).toMatch(/no publisher DSN: pass --publisher-dsn or set SYNCGUARD_PUBLISHER_DSN/);
    [process.env.SYNCGUARD_PUBLISHER_DSN, process.env.SYNCGUARD_SUBSCRIBER_DSN] = saved;
  });

  it('refuses an unknown option with exit 2', async () => {
    const r = await cli('register', '--table', 'public.good', '--tabel', 'x');
    expect(r.code).toBe(2);
    expect(r.err.join(' ')).toMatch(/unknown option '--tabel'/);
  });

  it('registers (DSNs from the environment) and unregisters', async () => {
    process.env.SYNCGUARD_PUBLISHER_DSN = pair.publisherDsn;
    process.env.SYNCGUARD_SUBSCRIBER_DSN = pair.subscriberDsn;
    try {
      const r = await cli('register', '--table', 'good', '--bucket-size', '10');
      expect(r.code).toBe(0);
      expect(r.out[0]).toBe('registered public.good: key (id), int buckets, 10 keys per bucket');
      expect(await state(pair.pub)).toEqual({ registrations: 1, triggers: 4 });
      expect(await state(pair.sub)).toEqual({ registrations: 1, triggers: 4 });
      const twice = await cli('register', '--table', 'good', '--bucket-size', '10'); // same configuration: nothing to do
      expect(twice.code).toBe(0);
      expect(twice.out).toEqual([
        expect.stringMatching(/^public\.good is already registered on both nodes \(fingerprint sg2-[0-9a-f]{16}\); nothing changed$/),
        // the test pair's subscription is the superuser's and the table sg_owner's (PostgreSQL 18)
        expect.stringMatching(
          /^ {2}note: subscription (\S+) \(owned by postgres\) applies each change as the table's owner sg_owner, .* ALTER SUBSCRIPTION "?\1"? SET \(run_as_owner = true\)$/,
        ),
        // the owner role does not own the superuser's publication: it says what to run instead
        expect.stringMatching(
          /^ {2}note: probes need syncguard\.probe in publication (\S+); as its owner run on the publisher: ALTER PUBLICATION "\1" ADD TABLE syncguard\.probe; then on the subscriber: ALTER SUBSCRIPTION "\S+" REFRESH PUBLICATION WITH \(copy_data = false\)$/,
        ),
      ]);
      const clash = await cli('register', '--table', 'good', '--bucket-size', '20');
      expect(clash.code).toBe(2);
      expect(clash.err[0]).toMatch(/already registered on this node as subscriber with fingerprint .*run syncguard unregister first/);
      await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} SET (run_as_owner = true)`);
      try {
        const asOwner = await cli('register', '--table', 'good', '--bucket-size', '10');
        expect(asOwner.out.filter((l) => l.includes('run_as_owner'))).toEqual([]);
      } finally {
        await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} SET (run_as_owner = false)`);
      }
      const badVersion = await cli('register', '--table', 'good', '--refresh', '--hash-version', '3');
      expect(badVersion.code).toBe(2);
      expect(badVersion.err.join(' ')).toMatch(/--hash-version must be one of 1, 2, got "3"/);
      // the explicit way down and up again: re-registered with the version asked for, re-swept
      const down = await cli('register', '--table', 'good', '--refresh', '--hash-version', '1');
      expect(down.code).toBe(0);
      expect(down.out).toContainEqual(expect.stringMatching(/^ {2}hash version 1, fingerprint sg1-[0-9a-f]{16}, /));
      expect(down.out).toContainEqual(
        '  note: registered again with the columns the table has now and hash version 1; both sides re-sweep it (run syncguard drain), and it is not comparable until they have',
      );
      const kept = await cli('register', '--table', 'good', '--bucket-size', '10'); // a table keeps its version
      expect(kept.out[0]).toMatch(/already registered on both nodes \(fingerprint sg1-/);
      const noRefresh = await cli('register', '--table', 'good', '--hash-version', '2'); // changes nothing, says how
      expect(noRefresh.code).toBe(2);
      expect(noRefresh.err.join(' ')).toMatch(
        /public\.good is registered with hash version 1; to move it to version 2 \(both sides re-sweep it\), run: syncguard register --table public\.good --refresh --hash-version 2/,
      );
      const up = await cli('register', '--table', 'good', '--refresh', '--hash-version', '2');
      expect(up.out).toContainEqual(expect.stringMatching(/^ {2}hash version 2, fingerprint sg2-[0-9a-f]{16}, /));
      const u = await cli('unregister', '--table', 'public.good');
      expect(u.code).toBe(0);
      expect(await state(pair.pub)).toEqual({ registrations: 0, triggers: 0 });
      expect(await state(pair.sub)).toEqual({ registrations: 0, triggers: 0 });
      const again = await cli('unregister', '--table', 'public.good');
      expect(again.code).toBe(2);
      expect(again.err[0]).toMatch(/not registered on either node/);
    } finally {
      delete process.env.SYNCGUARD_PUBLISHER_DSN;
      delete process.env.SYNCGUARD_SUBSCRIBER_DSN;
    }
  });
});
