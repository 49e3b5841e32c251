// Issue 17 item A1, continued: installing syncguard where its own state tables replicate (a FOR
// ALL TABLES publication, whose subscription owner is not a superuser), and by an installer that
// may create roles (the dedicated owner of syncguard.probe: what it may do, and a role of that
// name someone else made). The subscription-owner scenarios are in apply-owner.test.ts.

import { afterAll, describe, expect, inject, it } from 'vitest';
import { SUPERUSER_PASSWORD } from '../../dev/cluster.js';
import { createPair, OWNER } from '../../dev/pair.js';
import { connect } from '../../functions/db/connect.js';
import { installSchema, requireNoAllTablesSubscriber } from '../../functions/db/install.js';
import { installOnPair } from '../../functions/flows/pair-setup.js';
import { applyErrorCount, rowArrives as rowArrivesOn } from '../support/replication.js';
import { connectAs } from '../support/roles.js';
import { disposeScenarios, type Opened, PW, type Scenario } from '../support/subscription-owner.js';
import { register } from '../support/syncguard.js';

const T = 'public.orders';
const open: Opened[] = [];

afterAll(async () => {
  await disposeScenarios(open);
});

const applyErrors = (s: Scenario) => applyErrorCount(s.pair);
const rowArrives = (s: Scenario, id: number) => rowArrivesOn(s.pair, T, id);

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
    await installSchema(pub, 'publisher', { upTo: latest - 1 });
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
    const s: Scenario = { pair, pub, sub, app, subowner, writer: subowner, major: 18 };

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
    const c = await connectAs(pair.subscriberDsn, installer, PW);
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
      await c.close();
    }

    // C1: a holder of the role (WITH SET TRUE, INHERIT FALSE, as a subscription owner is told),
    // after SET ROLE, can write or alter no syncguard state: registration text is run as the installer
    const holder = `holder_${pair.name.slice(-8)}`;
    open.push({ pair, roles: [holder], clusters: [subscriber] });
    await pair.sub.query(
      `CREATE ROLE "${holder}" LOGIN PASSWORD '${PW}'; GRANT "${applyRole}" TO "${holder}" WITH SET TRUE, INHERIT FALSE`,
    );
    const h = await connectAs(pair.subscriberDsn, holder, PW);
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
      await h.close();
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
      await c.close();
    }
  });
});
