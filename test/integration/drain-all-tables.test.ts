// Issue 17 follow-up H3: on a publisher with a FOR ALL TABLES publication, drains wrote
// syncguard.node_state (the first drain's row, full re-sweeps, a state loss) and
// syncguard.registration (partition lists and column signatures), and those rows replicated to the
// subscription, which, owned by a non-superuser that may not SET ROLE to the installer, stopped
// applying. Drains now keep that state in unlogged tables and a sequence, which no publication
// sends: the subscription keeps running, whoever owns it.

import { afterAll, describe, expect, inject, it } from 'vitest';
import { SUPERUSER_PASSWORD } from '../../dev/cluster.js';
import { createPair, OWNER } from '../../dev/pair.js';
import { connect } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { drain } from '../../functions/db/drain.js';
import { installSchema } from '../../functions/db/install.js';
import { nodeStatus } from '../../functions/db/status.js';
import { applyErrorCount, rowArrives } from '../support/replication.js';
import { disposeScenarios, type Opened, PW } from '../support/subscription-owner.js';
import { register } from '../support/syncguard.js';

const T = 'public.orders';
const open: Opened[] = [];

afterAll(async () => {
  await disposeScenarios(open);
});

describe('drains on a FOR ALL TABLES publisher whose subscription the installer does not own', () => {
  it('write nothing the subscription replicates: it keeps applying after first drains, re-sweeps, a state loss and a column change', async () => {
    const publisher = inject('publisherCluster');
    const subscriber = inject('subscriberCluster');
    const pair = await createPair(publisher, subscriber, 'drain_all');
    const suffix = pair.name.slice(-8);
    const [app, subowner, applyRole] = [`app_${suffix}`, `subowner_${suffix}`, `syncguard_apply_${pair.name}`];
    const entry: Opened = { pair, roles: [subowner, app, applyRole], clusters: [publisher, subscriber] };
    open.push(entry);
    for (const c of [pair.pub, pair.sub]) {
      await c.query(`CREATE ROLE "${app}" NOLOGIN; CREATE ROLE "${subowner}" LOGIN PASSWORD '${PW}'; GRANT "${app}" TO ${OWNER};
        CREATE TABLE ${T} (id int PRIMARY KEY, v text); ALTER TABLE ${T} OWNER TO "${app}"`);
    }
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(1, 200) i`);
    await pair.pub.query(`CREATE PUBLICATION ${pair.name} FOR ALL TABLES`);
    await pair.sub.query(`CREATE ROLE "${applyRole}" NOLOGIN NOINHERIT; GRANT "${applyRole}" TO ${OWNER} WITH INHERIT TRUE, SET TRUE`);
    const pub = await connect(pair.publisherDsn, 'publisher');
    const sub = await connect(pair.subscriberDsn, 'subscriber');
    entry.pub = pub;
    entry.sub = sub;
    // installed and registered while a superuser owns the subscription (which may apply everything)
    const conn = `host=${publisher.host} port=${publisher.port} dbname=${pair.name} user=postgres password=${SUPERUSER_PASSWORD}`;
    // the subscriber first: the FOR ALL TABLES subscription then copies syncguard's tables too
    await installSchema(sub, 'subscriber');
    await installSchema(pub, 'publisher');
    await pair.sub.query(
      `CREATE SUBSCRIPTION ${pair.name} CONNECTION '${conn}' PUBLICATION ${pair.name} WITH (slot_name = '${pair.name}')`,
    );
    await pair.waitForSync();
    await register(pub, sub, T, { bucketSize: 20 });
    await pair.catchUp();
    // then given to a role that may apply the application's table and syncguard.probe, not the installer's tables
    await pair.sub.query(`GRANT "${app}" TO "${subowner}" WITH SET TRUE; GRANT "${applyRole}" TO "${subowner}" WITH SET TRUE, INHERIT FALSE;
      ALTER SUBSCRIPTION ${pair.name} OWNER TO "${subowner}"`);
    const s = { pair, table: T };
    expect(await rowArrives(s.pair, T, 10_001)).toBe(true);
    const errorsBefore = await applyErrorCount(s.pair);

    const drainOnce = async (opts: { fullResweep?: boolean } = {}) => {
      const out = await drain(pub, { deadline: Deadline.after(10_000), ...opts });
      expect(out.error).toBeUndefined();
      return out;
    };
    // the first drains: the node's drain state, the registration's column signature
    await drainOnce();
    await pair.pub.query(`UPDATE ${T} SET v = 'w' || id WHERE id < 50`);
    await drainOnce();
    // a full re-sweep
    expect((await drainOnce({ fullResweep: true })).fullResweepStarted).toBe(true);
    // a hashed column altered on both sides: the catalogue is rebuilt
    for (const c of [pair.pub, pair.sub]) await c.query(`ALTER TABLE ${T} ALTER COLUMN v TYPE varchar(200)`);
    await drainOnce();
    // the unlogged state lost (as crash recovery leaves it): recorded, and a new sweep started
    await pair.pub.query('DELETE FROM syncguard.sentinel');
    const lost = await drainOnce();
    expect(lost.stateLost).toBe(true);
    const status = await nodeStatus(pub);
    expect(status.stateLostCount).toBe(1);
    expect(status.stateLostAt).not.toBeNull();
    expect(status.lastFullSweepAt).not.toBeNull();
    expect(status.allTablesPublications).toEqual([pair.name]);
    await drainOnce();

    expect(await rowArrives(s.pair, T, 10_002)).toBe(true);
    expect(await applyErrorCount(s.pair)).toBe(errorsBefore);
    const { rows } = await pair.sub.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${T}`);
    expect(rows[0]?.n).toBe(202);
  });
});
