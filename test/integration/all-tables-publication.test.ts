// A FOR ALL TABLES publication also publishes syncguard's logged tables. Their rows are keyed by
// node, so the subscription's initial sync and later changes never collide with, nor overwrite,
// the subscriber's own rows, and replication keeps running.

import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createPair, type Pair } from '../../dev/pair.js';
import { type Client, connect } from '../../functions/db/connect.js';
import { installPair } from '../../functions/db/install.js';
import { catalogue, differingBuckets, register, settle } from '../support/syncguard.js';

const T = 'public.orders';
let pair: Pair;
let pub: Client;
let sub: Client;

beforeAll(async () => {
  pair = await createPair(inject('publisherCluster'), inject('subscriberCluster'), 'alltables');
  await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, v text)`);
  await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(1, 200) i`);
  pub = await connect(pair.publisherDsn, 'publisher');
  sub = await connect(pair.subscriberDsn, 'subscriber');
});

afterAll(async () => {
  await pub?.close();
  await sub?.close();
  await pair?.dispose();
});

it('warns at install and keeps each node’s own state when syncguard tables are replicated', async () => {
  await pair.pub.query(`CREATE PUBLICATION ${pair.name} FOR ALL TABLES`);
  const installedPair = await installPair(pub, sub);
  expect(installedPair.publisher.allTablesPublications).toEqual([pair.name]);
  // the subscription copies syncguard.migration and syncguard.registration too
  await pair.subscribe(null);
  const { rows: synced } = await pair.sub.query<{ relname: string }>(
    "SELECT c.relname FROM pg_subscription_rel r JOIN pg_class c ON c.oid = r.srrelid WHERE c.relnamespace = 'syncguard'::regnamespace ORDER BY 1",
  );
  expect(synced.map((r) => r.relname)).toEqual(['migration', 'node_state', 'probe', 'registration']);

  await register(pub, sub, T, { bucketSize: 20 });
  await pair.pub.query(`UPDATE ${T} SET v = 'changed' WHERE id < 50`);
  await pair.catchUp();

  // the publisher's registration arrived on the subscriber, under the publisher's node id
  const { rows: regs } = await pair.sub.query<{ mine: boolean; node_role: string }>(
    'SELECT node_id = syncguard.node_id() AS mine, node_role FROM syncguard.registration ORDER BY 1',
  );
  expect(regs).toEqual([
    { mine: false, node_role: 'publisher' },
    { mine: true, node_role: 'subscriber' },
  ]);
  const { rows: own } = await sub.query('SELECT node_role FROM syncguard.registrations');
  expect(own).toEqual([{ node_role: 'subscriber' }]);

  // replication is healthy: every table ready, no apply or sync errors
  await pair.waitForSync();
  const { rows: stats } = await pair.sub.query<{ errors: string }>(
    'SELECT apply_error_count + sync_error_count AS errors FROM pg_stat_subscription_stats WHERE subname = $1',
    [pair.name],
  );
  expect(Number(stats[0]?.errors)).toBe(0);

  await settle(pub);
  await settle(sub);
  const p = await catalogue(pub, T);
  expect(p.size).toBe(11);
  expect(differingBuckets(p, await catalogue(sub, T))).toEqual([]);
});
