// Issue 17 item A1: a subscription owned by a non-superuser role other than syncguard's installer.
// Tables owned by `app`; the subscription created by `subowner` (PG16+: a member of
// pg_create_subscription, granted app WITH SET TRUE; PG15: made its owner by a superuser, granted
// app); syncguard installed and the table registered by sg_owner. Before the fix the first verify
// sent probes the apply worker could not apply (it may not SET ROLE to the owner of syncguard.probe,
// or lacks INSERT on it), and replication stopped. Now nothing of syncguard reaches such a
// subscriber, verify says what it does instead and prints the fix; with the fix applied, probes work.

import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { type Cluster, SUPERUSER_PASSWORD, startCluster } from '../../dev/cluster.js';
import { createPair, OWNER } from '../../dev/pair.js';
import { parseTableName } from '../../functions/core/identifiers.js';
import { connect } from '../../functions/db/connect.js';
import { installSchema, requireNoAllTablesSubscriber } from '../../functions/db/install.js';
import { subscriptionApplyCheck } from '../../functions/flows/apply-rights.js';
import { installOnPair } from '../../functions/flows/pair-setup.js';
import { verifyPair } from '../../functions/flows/verify.js';
import {
  applyErrors,
  applyFix,
  disposeAll,
  type Opened,
  PW,
  rowArrives,
  type Scenario,
  scenario as setUp,
} from '../support/apply-owner.js';
import { enableProbes, register } from '../support/syncguard.js';

const T = 'public.orders';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const open: Opened[] = [];
const ownClusters: Cluster[] = [];

afterAll(async () => {
  await disposeAll(open);
  for (const c of ownClusters) await c.stop();
});

const scenario = (subscriber: Parameters<typeof setUp>[1], label: string, runAsOwner: boolean | null) =>
  setUp(open, subscriber, label, runAsOwner, T);

async function probeInSubscription(s: Scenario): Promise<boolean> {
  const { rows } = await s.pair.sub.query(
    `SELECT 1 FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
      WHERE s.subname = $1 AND r.srrelid = 'syncguard.probe'::regclass`,
    [s.pair.name],
  );
  return rows.length > 0;
}

async function check(s: Scenario, expectedFix: RegExp, privilegeMode: boolean): Promise<void> {
  // 1. verify: replication keeps running, and verify says what it did instead, with the fix
  const first = await verifyPair(s.pub, s.sub, { table: parseTableName(T), timeLimitMs: 20_000 });
  expect(await rowArrives(s, 10_001)).toBe(true);
  expect(await applyErrors(s)).toBe(0);
  expect(await probeInSubscription(s)).toBe(false);
  expect(first.reasons).toEqual([]);
  expect(first.status).toBe('in_sync');
  expect(first.tables.map((t) => t.method)).toEqual(['two_rounds']);
  const check1 = await subscriptionApplyCheck(s.sub, s.pair.name);
  expect(check1.ok).toBe(false);
  if (check1.ok) return;
  expect(check1.fix.join('; ')).toMatch(expectedFix);
  expect(check1.fix.join('; ')).not.toMatch(new RegExp(`GRANT "?${OWNER}"? TO`)); // never the installer's role
  const warning = first.warnings.find((w) => w.includes('probes cannot reach it'));
  expect(warning).toContain(s.subowner);
  expect(warning).toContain(check1.fix.at(-1));

  // 2. the printed fix; then the probe route is added and probes work
  await applyFix(s, check1.fix);
  expect((await subscriptionApplyCheck(s.sub, s.pair.name)).ok).toBe(true);
  await enableProbes(s.pair);
  expect(await probeInSubscription(s)).toBe(true);
  // a writer keeps a bucket dirty: only a probe settles it
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing; i++) await s.pair.pub.query(`UPDATE ${T} SET v = $1 WHERE id = 7`, [`w${i}`]);
  })();
  let second: Awaited<ReturnType<typeof verifyPair>>;
  try {
    await sleep(200);
    second = await verifyPair(s.pub, s.sub, { table: parseTableName(T), timeLimitMs: 20_000 });
  } finally {
    writing = false;
    await writer;
  }
  expect(second.reasons).toEqual([]);
  expect(second.status).toBe('in_sync');
  expect(second.tables.map((t) => t.method)).toEqual(['probe']);
  expect(second.probes.probes).toBeGreaterThan(0);
  // probe rows deleted on the publisher are applied too (DELETE)
  await s.pair.pub.query('DELETE FROM syncguard.probe');
  expect(await rowArrives(s, 10_002)).toBe(true);
  expect(await applyErrors(s)).toBe(0);

  // the subscription owner may SET ROLE to the tables' owner, and so add a trigger on
  // syncguard.probe that would run before syncguard's: then probes are not trusted at all
  if (!privilegeMode) {
    await s.pair.sub.query('CREATE FUNCTION public.sg_foreign() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$');
    const so = new pg.Client({ connectionString: s.pair.subscriberDsn.replace(/\/\/[^@]+@/, `//${s.subowner}:${PW}@`) });
    await so.connect();
    try {
      const role = (
        await s.sub.query<{ r: string }>('SELECT relowner::regrole::text AS r FROM pg_class WHERE oid = $1::regclass', ['syncguard.probe'])
      ).rows[0]?.r;
      await so.query(
        `SET ROLE ${role}; CREATE TRIGGER a_foreign BEFORE INSERT ON syncguard.probe FOR EACH ROW EXECUTE FUNCTION public.sg_foreign(); RESET ROLE`,
      );
      const third = await verifyPair(s.pub, s.sub, { table: parseTableName(T), timeLimitMs: 20_000 });
      expect(third.tables.map((t) => t.method)).toEqual(['two_rounds']);
      expect(third.warnings.join('\n')).toContain('trigger a_foreign on probe, which syncguard did not create');
      await so.query(`SET ROLE ${role}; DROP TRIGGER a_foreign ON syncguard.probe; RESET ROLE`);
    } finally {
      await so.end();
    }
    expect(await rowArrives(s, 10_003)).toBe(true);
  }

  // 3. an application role cannot insert probes, nor can the subscription owner granted the
  // dedicated role WITH INHERIT FALSE (only after SET ROLE, and then no answer is computed); nobody
  // but syncguard writes an answer
  for (const role of [s.writer, s.subowner]) {
    const c = new pg.Client({ connectionString: s.pair.subscriberDsn.replace(/\/\/[^@]+@/, `//${role}:${PW}@`) });
    await c.connect();
    try {
      const insert = "INSERT INTO syncguard.probe (origin, id, kind) VALUES (gen_random_uuid(), 1, 'marker')";
      if (role === s.writer || !privilegeMode) await expect(c.query(insert)).rejects.toThrow(/permission denied/);
      await expect(c.query('INSERT INTO syncguard.probe_result (origin, id, ok) VALUES (gen_random_uuid(), 1, true)')).rejects.toThrow(
        /permission denied/,
      );
    } finally {
      await c.end();
    }
  }
}

describe('a subscription owned by a non-superuser other than the installer', () => {
  it('PostgreSQL 18, run_as_owner = false: no probe reaches it until it may SET ROLE to syncguard_apply', async () => {
    const s = await scenario(inject('subscriberCluster'), 'apo_off', false);
    await check(s, /GRANT "syncguard_apply_[a-z0-9_]+" TO "subowner_[a-z0-9]+" WITH SET TRUE, INHERIT FALSE/, false);
  });

  it('PostgreSQL 18, run_as_owner = true: no probe reaches it until it may read, insert and delete probes', async () => {
    const s = await scenario(inject('subscriberCluster'), 'apo_on', true);
    await check(s, /^GRANT SELECT, INSERT, DELETE ON syncguard\.probe TO "subowner_[a-z0-9]+"$/, true);
  });

  it('PostgreSQL 15 subscriber: no probe reaches it until it may read, insert and delete probes', async () => {
    const c = await startCluster('subscriber15', 15);
    ownClusters.push(c);
    const s = await scenario(c, 'apo_15', null);
    expect(s.major).toBe(15);
    await check(s, /^GRANT SELECT, INSERT, DELETE ON syncguard\.probe TO "subowner_[a-z0-9]+"$/, true);
  });
});

describe('a FOR ALL TABLES publication, which also replicates syncguard.migration, registration, node_state and probe', () => {
  it('refuses install and register while the subscription owner could not apply their rows, and replication keeps running', async () => {
    const publisher = inject('publisherCluster');
    const subscriber = inject('subscriberCluster');
    const pair = await createPair(publisher, subscriber, 'apo_all');
    const suffix = pair.name.slice(-8);
    const [app, subowner, applyRole] = [`app_${suffix}`, `subowner_${suffix}`, `syncguard_apply_${pair.name}`];
    const entry: Opened = { pair, roles: [subowner, app, applyRole], clusters: [publisher, subscriber] };
    open.push(entry);
    for (const c of [pair.pub, pair.sub]) {
      await c.query(`CREATE ROLE "${app}" NOLOGIN; CREATE ROLE "${subowner}" LOGIN PASSWORD '${PW}'; GRANT "${app}" TO ${OWNER};
        CREATE TABLE ${T} (id int PRIMARY KEY, v text); ALTER TABLE ${T} OWNER TO "${app}"`);
    }
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(1, 100) i`);
    await pair.pub.query(`CREATE PUBLICATION ${pair.name} FOR ALL TABLES`);
    // an administrator made the dedicated role and gave it to the installer; the subscriber's
    // install gives it syncguard's logged tables; the publisher is one version behind
    await pair.sub.query(`CREATE ROLE "${applyRole}" NOLOGIN NOINHERIT; GRANT "${applyRole}" TO ${OWNER} WITH INHERIT TRUE, SET TRUE`);
    const pub = await connect(pair.publisherDsn, 'publisher');
    const sub = await connect(pair.subscriberDsn, 'subscriber');
    entry.pub = pub;
    entry.sub = sub;
    expect((await installSchema(sub, 'subscriber')).applyOwner).toMatchObject({ role: applyRole, adopted: true });
    const latest = (await installSchema(sub, 'subscriber')).toVersion;
    await installSchema(pub, 'publisher', latest - 1);
    const { rows: owners } = await pair.sub.query<{ relname: string; owner: string }>(
      "SELECT relname, relowner::regrole::text AS owner FROM pg_class WHERE relnamespace = 'syncguard'::regnamespace AND relkind = 'r' AND relpersistence = 'p' ORDER BY 1",
    );
    // C1: only syncguard.probe is the dedicated role's; the state tables stay the installer's
    expect(owners).toEqual(
      ['migration', 'node_state', 'probe', 'registration'].map((relname) => ({ relname, owner: relname === 'probe' ? applyRole : OWNER })),
    );

    // the subscription, made by a superuser (it copies syncguard's state tables too), then given to subowner
    const conn = `host=${publisher.host} port=${publisher.port} dbname=${pair.name} user=postgres password=${SUPERUSER_PASSWORD}`;
    await pair.sub.query(
      `CREATE SUBSCRIPTION ${pair.name} CONNECTION '${conn}' PUBLICATION ${pair.name} WITH (slot_name = '${pair.name}')`,
    );
    await pair.waitForSync();
    await pair.sub.query(`GRANT CREATE ON DATABASE ${pair.name} TO "${subowner}"; GRANT "${app}" TO "${subowner}" WITH SET TRUE;
      GRANT "${applyRole}" TO "${subowner}" WITH SET TRUE, INHERIT FALSE; ALTER SUBSCRIPTION ${pair.name} OWNER TO "${subowner}"`);
    const s: Scenario = { pair, pub, sub, app, subowner, writer: subowner, major: 18, table: T };

    // subowner may SET ROLE to the probe's owner but not to the installer: neither the publisher's
    // install nor a registration may write, and no grant on the state tables is printed
    const refusal = new RegExp(`ALTER SUBSCRIPTION "${pair.name}" OWNER TO <a superuser, or ${OWNER}>`);
    await expect(installOnPair(pub, sub)).rejects.toThrow(refusal);
    await expect(installOnPair(pub, sub)).rejects.not.toThrow(/GRANT [A-Z, ]+ ON syncguard\.(registration|node_state|migration)/);
    expect((await pub.query('SELECT max(version) AS v FROM syncguard.migration')).rows[0]?.v).toBe(latest - 1);
    await expect(register(pub, sub, T, { bucketSize: 20 })).rejects.toThrow(refusal);
    // H4: the single-node install of the publisher refuses too (it cannot check the subscriber)
    await expect(requireNoAllTablesSubscriber(pub)).rejects.toThrow(/install with the pair form/);
    expect((await pub.query('SELECT max(version) AS v FROM syncguard.migration')).rows[0]?.v).toBe(latest - 1);
    expect((await pub.query('SELECT count(*)::int AS n FROM syncguard.registration')).rows[0]?.n).toBe(0);
    expect(await rowArrives(s, 10_001)).toBe(true);
    expect(await applyErrors(s)).toBe(0);

    // the fix as printed: a superuser owns the subscription; both go through, and their rows are applied
    await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} OWNER TO postgres`);
    await installOnPair(pub, sub);
    await register(pub, sub, T, { bucketSize: 20 });
    await pair.catchUp();
    const { rows: regs } = await pair.sub.query<{ node_role: string }>('SELECT node_role FROM syncguard.registration ORDER BY 1');
    expect(regs.map((r) => r.node_role)).toEqual(['publisher', 'subscriber']);
    expect(await rowArrives(s, 10_002)).toBe(true);
    expect(await applyErrors(s)).toBe(0);
  });
});

describe('install by a role that may create roles', () => {
  it('creates the dedicated owner, gives it the logged tables, and keeps every right of the installer on them', async () => {
    const subscriber = inject('subscriberCluster');
    const pair = await createPair(inject('publisherCluster'), subscriber, 'apo_cr');
    const installer = `inst_${pair.name.slice(-8)}`;
    const applyRole = `syncguard_apply_${pair.name}`;
    open.push({ pair, roles: [applyRole, installer], clusters: [subscriber] });
    await pair.sub.query(
      `CREATE ROLE "${installer}" LOGIN CREATEROLE PASSWORD '${PW}'; GRANT CREATE ON DATABASE ${pair.name} TO "${installer}"`,
    );
    const c = new pg.Client({ connectionString: pair.subscriberDsn.replace(/\/\/[^@]+@/, `//${installer}:${PW}@`) });
    await c.connect();
    try {
      const r = await installSchema(c, 'subscriber');
      expect(r.applyOwner).toMatchObject({ role: applyRole, exists: true, member: true, adopted: true, setup: [] });
      const { rows } = await c.query<{ relname: string; owner: string }>(
        "SELECT relname, relowner::regrole::text AS owner FROM pg_class WHERE relnamespace = 'syncguard'::regnamespace AND relkind = 'r' ORDER BY 1",
      );
      for (const t of rows) expect(t.owner).toBe(t.relname === 'probe' ? applyRole : installer);
      // the role has no other right: NOLOGIN, no CREATE on the schema, owns nothing else
      const { rows: role } = await pair.sub.query(
        `SELECT r.rolcanlogin, r.rolinherit, has_schema_privilege(r.oid, 'syncguard', 'CREATE') AS create_schema,
                (SELECT count(*)::int FROM pg_class c WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p')) AS owns
           FROM pg_roles r WHERE r.rolname = $1`,
        [applyRole],
      );
      expect(role).toEqual([{ rolcanlogin: false, rolinherit: false, create_schema: false, owns: 1 }]);
      // the installer keeps its rights on them: its grants, a write, another install
      await c.query('SELECT syncguard._grants()');
      await c.query("INSERT INTO syncguard.probe (origin, id, kind) VALUES (syncguard.node_id(), -1, 'marker')");
      await c.query('DELETE FROM syncguard.probe WHERE id = -1');
      expect((await installSchema(c, 'subscriber')).applyOwner).toMatchObject({ adopted: true });
      await c.query('SELECT syncguard.probe_route()');
      expect((await c.query('SELECT syncguard._probe_table_clean() AS x')).rows[0]?.x).toBeNull();
    } finally {
      await c.end();
    }

    // C1: a holder of the role (WITH SET TRUE, INHERIT FALSE, as a subscription owner is told),
    // after SET ROLE, can write or alter no syncguard state: registration text is run as the installer
    const holder = `holder_${pair.name.slice(-8)}`;
    open.push({ pair, roles: [holder], clusters: [subscriber] });
    await pair.sub.query(
      `CREATE ROLE "${holder}" LOGIN PASSWORD '${PW}'; GRANT "${applyRole}" TO "${holder}" WITH SET TRUE, INHERIT FALSE`,
    );
    const h = new pg.Client({ connectionString: pair.subscriberDsn.replace(/\/\/[^@]+@/, `//${holder}:${PW}@`) });
    await h.connect();
    try {
      await h.query(`SET ROLE "${applyRole}"`);
      for (const t of ['registration', 'node_state', 'migration']) {
        await expect(h.query(`INSERT INTO syncguard.${t} DEFAULT VALUES`)).rejects.toThrow(/permission denied/);
        const col = (
          await pair.sub.query<{ a: string }>('SELECT attname AS a FROM pg_attribute WHERE attrelid = $1::regclass AND attnum = 1', [
            `syncguard.${t}`,
          ])
        ).rows[0]?.a;
        await expect(h.query(`UPDATE syncguard.${t} SET "${col}" = "${col}"`)).rejects.toThrow(/permission denied/);
        await expect(h.query(`ALTER TABLE syncguard.${t} ADD COLUMN x int`)).rejects.toThrow(/must be owner/);
        await expect(h.query(`ALTER TABLE syncguard.${t} OWNER TO "${holder}"`)).rejects.toThrow(/must be owner/);
        await h.query(`GRANT ALL ON syncguard.${t} TO PUBLIC`).catch(() => {});
        expect((await h.query(`SELECT has_table_privilege('${holder}', 'syncguard.${t}', 'INSERT') AS i`)).rows[0]?.i).toBe(false);
      }

      // H2: whatever DDL it runs on syncguard.probe makes the table unclean (probes are not trusted)
      const ddl: [string, RegExp, string][] = [
        [
          'ALTER TABLE syncguard.probe ENABLE ROW LEVEL SECURITY',
          /row-level security on probe/,
          'ALTER TABLE syncguard.probe DISABLE ROW LEVEL SECURITY',
        ],
        [
          'ALTER TABLE syncguard.probe FORCE ROW LEVEL SECURITY',
          /row-level security on probe/,
          'ALTER TABLE syncguard.probe NO FORCE ROW LEVEL SECURITY',
        ],
        ['CREATE POLICY p ON syncguard.probe USING (true)', /policy p on probe/, 'DROP POLICY p ON syncguard.probe'],
        [
          "ALTER TABLE syncguard.probe ALTER kind SET DEFAULT 'x'",
          /a default on column kind on probe/,
          'ALTER TABLE syncguard.probe ALTER kind DROP DEFAULT',
        ],
        [
          'ALTER TABLE syncguard.probe ALTER request SET DEFAULT \'{"a": 1}\'',
          /a default on column request on probe/,
          "ALTER TABLE syncguard.probe ALTER request SET DEFAULT '{}'",
        ],
        [
          'ALTER TABLE syncguard.probe ADD CONSTRAINT c CHECK (id > 0)',
          /constraint c on probe/,
          'ALTER TABLE syncguard.probe DROP CONSTRAINT c',
        ],
        ['ALTER TABLE syncguard.probe SET UNLOGGED', /persistence u on probe/, 'ALTER TABLE syncguard.probe SET LOGGED'],
        ['GRANT SELECT ON syncguard.probe TO PUBLIC', /a grant to PUBLIC on probe/, 'REVOKE SELECT ON syncguard.probe FROM PUBLIC'],
        ['CREATE RULE r AS ON DELETE TO syncguard.probe DO ALSO NOTIFY x', /rule r on probe/, 'DROP RULE r ON syncguard.probe'],
      ];
      for (const [run, expected, undo] of ddl) {
        const ok = await h.query(run).then(
          () => true,
          () => false,
        );
        expect(ok, run).toBe(true);
        const clean = (await pair.sub.query<{ x: string | null }>('SELECT syncguard._probe_table_clean() AS x')).rows[0]?.x ?? '';
        expect(clean, run).toMatch(expected);
        // the publisher-side insert path refuses, and cleanup deletes nothing, while it is so
        await expect(pair.sub.query("SELECT syncguard.probe_marker(gen_random_uuid(), 'x')"), run).rejects.toThrow(/sends no probe/);
        expect((await pair.sub.query('SELECT syncguard.probe_cleanup() AS n')).rows[0]?.n).toBe(0);
        await h.query(undo);
        expect((await pair.sub.query('SELECT syncguard._probe_table_clean() AS x')).rows[0]?.x, undo).toBeNull();
      }
      // an index created by the owner (needs CREATE on the schema, which it has not)
      await expect(h.query('CREATE INDEX ON syncguard.probe ((id + 1))')).rejects.toThrow(/permission denied/);
    } finally {
      await h.end();
    }
  });

  it('M6: does not adopt a role of that name that someone made able to log in', async () => {
    const subscriber = inject('subscriberCluster');
    const pair = await createPair(inject('publisherCluster'), subscriber, 'apo_m6');
    const applyRole = `syncguard_apply_${pair.name}`;
    open.push({ pair, roles: [applyRole], clusters: [subscriber] });
    await pair.sub.query(`CREATE ROLE "${applyRole}" LOGIN PASSWORD '${PW}'`);
    const c = await connect(pair.subscriberDsn, 'subscriber');
    try {
      const r = await installSchema(c, 'subscriber');
      expect(r.applyOwner).toMatchObject({ role: applyRole, adopted: false, unsafe: `role ${applyRole} can log in` });
      const { rows } = await pair.sub.query("SELECT relowner::regrole::text AS o FROM pg_class WHERE oid = 'syncguard.probe'::regclass");
      expect(rows[0]?.o).toBe(OWNER);
    } finally {
      await c.end();
    }
  });
});
