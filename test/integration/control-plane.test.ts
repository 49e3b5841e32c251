// The control plane: runs, divergences with their lifecycle, and "verified in sync as of", written
// by `syncguard verify --control-dsn`; an unreachable control plane does not change the verdict.

import { afterAll, describe, expect, it } from 'vitest';
import { OWNER } from '../../dev/pair.js';
import { plainNode } from '../../dev/plain-node.js';
import type { Client } from '../../functions/db/connect.js';
import { controlMigrations } from '../../functions/db/generated/migrations.js';
import { cli } from '../support/cli.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.invoices';
let control: Client | undefined;

const ctx = usePair({
  label: 'control',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, amount numeric)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, i FROM generate_series(1, 1000) i`);
    await pair.pub.query(`CREATE DATABASE ${pair.name}_control OWNER ${OWNER}`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

afterAll(async () => {
  await control?.close();
  await ctx.pair.pub.query(`DROP DATABASE IF EXISTS ${ctx.pair.name}_control WITH (FORCE)`).catch(() => {});
});

const controlDsn = () => ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_control');
const verify = (...extra: string[]) =>
  cli(
    'verify',
    '--publisher-dsn',
    ctx.pair.publisherDsn,
    '--subscriber-dsn',
    ctx.pair.subscriberDsn,
    '--control-dsn',
    controlDsn(),
    '--pair',
    'orders-blue-green',
    ...extra,
  );

const LATEST = controlMigrations.at(-1)?.version;

describe('control plane', () => {
  it('installs in its own database, idempotently', async () => {
    expect((await cli('install', '--control-dsn', controlDsn())).out).toEqual([`control plane: schema installed to version ${LATEST}`]);
    expect((await cli('install', '--control-dsn', controlDsn())).out).toEqual([`control plane: schema is up to date (version ${LATEST})`]);
    control = await plainNode(controlDsn());
  });

  it('records an in-sync run and stamps the table verified as of the LSN', async () => {
    const r = await verify();
    expect(r.code).toBe(0);
    expect(r.out.at(-1)).toMatch(/^ {2}recorded as run \d+ in the control plane$/);
    const { rows } = await (control as Client).query(
      'SELECT status, pair, via, coverage_pct::text, mismatches, verified_lsn IS NOT NULL AS lsn, publisher FROM syncguard_control.verification_run',
    );
    expect(rows).toEqual([
      {
        status: 'in_sync',
        pair: 'orders-blue-green',
        via: 'cli',
        coverage_pct: '100.00',
        mismatches: 0,
        lsn: true,
        publisher: expect.stringMatching(/^127\.0\.0\.1:\d+\/control_/),
      },
    ]);
    const { rows: stamped } = await (control as Client).query('SELECT table_name FROM syncguard_control.table_verified');
    expect(stamped).toEqual([{ table_name: T }]);
  });

  it('opens one divergence per bucket, refreshes it on the next run, and closes it once in sync', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET amount = -1 WHERE id = 250`);
    expect((await verify()).code).toBe(1);
    expect((await verify()).code).toBe(1);
    const { rows: runs } = await (control as Client).query<{ n: number }>(
      'SELECT local_writes AS n FROM syncguard_control.verification_run ORDER BY run_id DESC LIMIT 1',
    );
    expect(runs).toEqual([{ n: 1 }]); // one write, however the report groups it
    const { rows } = await (control as Client).query(
      'SELECT divergence_id, table_name, bucket, state, first_run_id < last_run_id AS refreshed FROM syncguard_control.divergence',
    );
    expect(rows).toEqual([{ divergence_id: expect.any(String), table_name: T, bucket: '2', state: 'open', refreshed: true }]);

    await ctx.pair.sub.query(`UPDATE ${T} SET amount = 250 WHERE id = 250`);
    expect((await verify()).code).toBe(0);
    const { rows: events } = await (control as Client).query(
      'SELECT from_state, to_state, note FROM syncguard_control.divergence_event ORDER BY event_id',
    );
    expect(events).toEqual([
      { from_state: null, to_state: 'open', note: 'confirmed in two rounds' },
      { from_state: 'open', to_state: 'verified', note: 'an in-sync verification no longer finds it' },
    ]);
  });

  it('still prints the verdict and keeps its exit code when the control plane is unreachable', async () => {
    const r = await cli(
      'verify',
      '--publisher-dsn',
      ctx.pair.publisherDsn,
      '--subscriber-dsn',
      ctx.pair.subscriberDsn,
      '--control-dsn',
      'postgres://x:secretpw@127.0.0.1:1/none',
    );
    expect(r.code).toBe(0);
    expect(r.out[0]).toMatch(/^verify: IN SYNC/);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(/^syncguard: warning: the verdict was not recorded in the control plane: could not connect/);
    expect(r.err[0]).not.toContain('secretpw');
  });
});
