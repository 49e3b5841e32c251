// A subscription owned by a non-superuser role other than syncguard's installer (issue 17 item
// A1), as apply-owner.test.ts, repair-apply-owner.test.ts and drain-all-tables.test.ts set it up:
// tables owned by `app`; the subscription created by `subowner` (PG16+: a member of
// pg_create_subscription, granted app WITH SET TRUE; PG15: made its owner by a superuser, granted
// app); syncguard installed and the table registered by sg_owner.

import pg from 'pg';
import { inject } from 'vitest';
import { type ClusterInfo, SUPERUSER_PASSWORD, superuserDsn } from '../../dev/cluster.js';
import { createPair, OWNER, type Pair } from '../../dev/pair.js';
import { installSchema } from '../../functions/db/install.js';
import { enableProbes, installed, register, settle } from './syncguard.js';

export const PW = 'subowner-pw';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Scenario {
  pair: Pair;
  pub: pg.Client;
  sub: pg.Client;
  app: string;
  subowner: string;
  writer: string;
  major: number;
  table: string;
}

export interface Opened {
  pair: Pair;
  pub?: pg.Client;
  sub?: pg.Client;
  roles: string[];
  clusters: ClusterInfo[];
}

/** Ends the connections, drops the pairs and the roles made for them (for afterAll). */
export async function disposeAll(open: readonly Opened[]): Promise<void> {
  for (const o of open) {
    await o.pub?.end().catch(() => {});
    await o.sub?.end().catch(() => {});
    await o.pair.dispose().catch(() => {});
    for (const c of o.clusters) {
      const admin = new pg.Client({ connectionString: superuserDsn(c) });
      await admin.connect();
      for (const r of o.roles) await admin.query(`DROP ROLE IF EXISTS "${r}"`).catch(() => {});
      await admin.end();
    }
  }
}

/** The user's setup, up to a registered table; runAsOwner null: PostgreSQL 15 (no such option). */
export async function scenario(
  open: Opened[],
  subscriber: ClusterInfo,
  label: string,
  runAsOwner: boolean | null,
  table = 'public.orders',
): Promise<Scenario> {
  const publisher = inject('publisherCluster');
  const pair = await createPair(publisher, subscriber, label);
  const suffix = pair.name.slice(-8);
  const app = `app_${suffix}`;
  const subowner = `subowner_${suffix}`;
  const writer = `writer_${suffix}`;
  const entry: Opened = { pair, roles: [writer, subowner, app, `syncguard_apply_${pair.name}`], clusters: [publisher, subscriber] };
  open.push(entry);
  for (const c of [pair.pub, pair.sub]) {
    await c.query(`CREATE ROLE "${app}" NOLOGIN; CREATE ROLE "${subowner}" LOGIN PASSWORD '${PW}'; CREATE ROLE "${writer}" LOGIN PASSWORD '${PW}';
      GRANT "${app}" TO ${OWNER};
      CREATE TABLE ${table} (id int PRIMARY KEY, v text); ALTER TABLE ${table} OWNER TO "${app}";
      GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} TO "${writer}"`);
  }
  await pair.pub.query(`INSERT INTO ${table} SELECT i, 'v' || i FROM generate_series(1, 300) i`);
  await pair.pub.query(`CREATE PUBLICATION ${pair.name} FOR TABLE ${table}`);
  const conn = `host=${publisher.host} port=${publisher.port} dbname=${pair.name} user=postgres password=${SUPERUSER_PASSWORD}`;
  if (runAsOwner === null) {
    // PostgreSQL 15: only a superuser owns a subscription when it is made or given; an owner that
    // loses superuser afterwards keeps it, and apply then checks its privileges
    await pair.sub.query(`GRANT "${app}" TO "${subowner}"; ALTER ROLE "${subowner}" SUPERUSER`);
    await pair.sub.query(
      `CREATE SUBSCRIPTION ${pair.name} CONNECTION '${conn}' PUBLICATION ${pair.name} WITH (slot_name = '${pair.name}', enabled = false)`,
    );
    await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} OWNER TO "${subowner}"; ALTER ROLE "${subowner}" NOSUPERUSER`);
    await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} ENABLE`);
  } else {
    await pair.sub.query(`GRANT pg_create_subscription TO "${subowner}"; GRANT CREATE ON DATABASE ${pair.name} TO "${subowner}";
      GRANT "${app}" TO "${subowner}" WITH SET TRUE`);
    const so = new pg.Client({ connectionString: superuserDsn(subscriber, pair.name).replace(/\/\/[^@]+@/, `//${subowner}:${PW}@`) });
    await so.connect();
    try {
      await so.query(
        `CREATE SUBSCRIPTION ${pair.name} CONNECTION '${conn}' PUBLICATION ${pair.name} WITH (slot_name = '${pair.name}', run_as_owner = ${runAsOwner})`,
      );
    } finally {
      await so.end();
    }
  }
  await pair.waitForSync();
  // syncguard installed and the table registered by sg_owner; a superuser runs what install prints for probes
  const { pub, sub } = await installed(pair);
  entry.pub = pub;
  entry.sub = sub;
  await register(pub, sub, table, { bucketSize: 50 });
  await enableProbes(pair);
  await settle(pub);
  await settle(sub);
  const major = Math.floor(Number((await sub.query("SELECT current_setting('server_version_num') AS v")).rows[0]?.v) / 10000);
  return { pair, pub, sub, app, subowner, writer, major, table };
}

export async function applyErrors(s: Pick<Scenario, 'pair'>): Promise<number> {
  const { rows } = await s.pair.sub.query<{ n: string }>(
    'SELECT apply_error_count + sync_error_count AS n FROM pg_stat_subscription_stats WHERE subname = $1',
    [s.pair.name],
  );
  return Number(rows[0]?.n);
}

/** A row inserted on the publisher arrives on the subscriber (within 15 s). */
export async function rowArrives(s: Pick<Scenario, 'pair' | 'table'>, id: number): Promise<boolean> {
  await s.pair.pub.query(`INSERT INTO ${s.table} VALUES ($1, 'late')`, [id]);
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if ((await s.pair.sub.query(`SELECT 1 FROM ${s.table} WHERE id = $1`, [id])).rowCount === 1) return true;
    await sleep(100);
  }
  return false;
}

/** Runs the fix as printed: SQL as the subscriber's superuser, "syncguard install" as the installer. */
export async function applyFix(s: Pick<Scenario, 'pair' | 'sub'>, steps: readonly string[]): Promise<void> {
  for (const step of steps) {
    if (step.startsWith('syncguard install')) await installSchema(s.sub, 'subscriber');
    else await s.pair.sub.query(step);
  }
}
