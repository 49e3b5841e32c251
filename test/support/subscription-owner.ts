// The setup of issue 17 item A1, as a user has it: tables owned by `app`, a subscription owned by
// `subowner`, a non-superuser other than syncguard's installer (PG16+: a member of
// pg_create_subscription granted app WITH SET TRUE, with or without run_as_owner; PG15: made its
// owner by a superuser, granted app), and syncguard installed and the table registered by
// sg_owner. Roles are cluster-wide: each scenario names its own after its pair, and
// disposeScenarios drops them with the pair's databases.

import { type ClusterInfo, SUPERUSER_PASSWORD, superuserDsn } from '../../dev/cluster.js';
import { createPair, OWNER, type Pair } from '../../dev/pair.js';
import type { Client } from '../../functions/db/connect.js';
import { installSchema } from '../../functions/db/install.js';
import { connectAs, dropRoles } from './roles.js';
import { enableProbes, installed, register, settle } from './syncguard.js';

/** The password of every login role made here. */
export const PW = 'subowner-pw';

export interface Scenario {
  pair: Pair;
  pub: Client;
  sub: Client;
  app: string;
  subowner: string;
  writer: string;
  major: number;
}

/** What disposeScenarios tears down: pairs, their owner connections, and the roles made for them. */
export interface Opened {
  pair: Pair;
  pub?: Client;
  sub?: Client;
  roles: string[];
  clusters: ClusterInfo[];
}

/** Closes the connections, drops the pairs' databases, then the roles (which own objects there). */
export async function disposeScenarios(open: readonly Opened[]): Promise<void> {
  for (const o of open) {
    await o.pub?.close().catch(() => {});
    await o.sub?.close().catch(() => {});
    await o.pair.dispose().catch(() => {});
    await dropRoles(o.clusters, o.roles);
  }
}

/** The user's setup up to a registered table `table` (300 rows); runAsOwner null: PostgreSQL 15 (no such option). */
export async function scenario(
  open: Opened[],
  publisher: ClusterInfo,
  subscriber: ClusterInfo,
  label: string,
  table: string,
  runAsOwner: boolean | null,
): Promise<Scenario> {
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
    const so = await connectAs(superuserDsn(subscriber, pair.name), subowner, PW);
    try {
      await so.query(
        `CREATE SUBSCRIPTION ${pair.name} CONNECTION '${conn}' PUBLICATION ${pair.name} WITH (slot_name = '${pair.name}', run_as_owner = ${runAsOwner})`,
      );
    } finally {
      await so.close();
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
  return { pair, pub, sub, app, subowner, writer, major };
}

/** Runs the fix as printed: SQL as the subscriber's superuser, "syncguard install" as the installer. */
export async function applyFix(s: Pick<Scenario, 'pair' | 'sub'>, steps: readonly string[]): Promise<void> {
  for (const step of steps) {
    if (step.startsWith('syncguard install')) await installSchema(s.sub, 'subscriber');
    else await s.pair.sub.query(step);
  }
}
