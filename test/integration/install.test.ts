// Installing the node schema: idempotent, safe under racing installers, as a non-superuser, and an
// upgrade from any earlier version ends with the same schema dump (dev/schema-dump.ts: definitions,
// owners, grants, triggers) as a fresh install.

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createPair, OWNER, type Pair } from '../../dev/pair.js';
import { schemaDump } from '../../dev/schema-dump.js';
import { type Client, connect } from '../../functions/db/connect.js';
import { NewerDefinitionsError, readInstalledDefinitions } from '../../functions/db/definitions.js';
import { type Definitions, nodeDefinitions, nodeMigrations } from '../../functions/db/generated/migrations.js';
import { installPair, installSchema, nodeId } from '../../functions/db/install.js';
import { installedVersions, requireInstalled } from '../../functions/db/installed.js';

let pair: Pair;

beforeAll(async () => {
  pair = await createPair(inject('publisherCluster'), inject('subscriberCluster'), 'install');
});

afterAll(async () => {
  if (pair === undefined) return;
  const { rows } = await pair.pub.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${pair.name}\\_%`]);
  for (const r of rows) await pair.pub.query(`DROP DATABASE ${r.datname} WITH (FORCE)`);
  await pair.dispose();
});

/** A database on the publisher server owned by the non-superuser owner role. */
async function freshDatabase(name: string): Promise<string> {
  await pair.pub.query(`CREATE DATABASE ${name} OWNER ${OWNER}`);
  return pair.publisherDsn.replace(/\/[^/]+$/, `/${name}`);
}

describe('installSchema', () => {
  it('installs as a non-superuser, records every version, and is idempotent', async () => {
    const c = await connect(await freshDatabase(`${pair.name}_idem`), 'database');
    try {
      const { rows } = await c.query<{ s: boolean }>('SELECT rolsuper AS s FROM pg_roles WHERE rolname = current_user');
      expect(rows[0]?.s).toBe(false);
      const first = await installSchema(c);
      expect(first.applied).toEqual(nodeMigrations.map((m) => m.version));
      const second = await installSchema(c);
      expect(second.applied).toEqual([]);
      expect(second.toVersion).toBe(nodeMigrations.length);
      expect(await installedVersions(c)).toEqual(nodeMigrations.map((m) => m.version));
    } finally {
      await c.close();
    }
  });

  it('is safe when several installers race: all succeed, each migration applies once', async () => {
    const dsn = await freshDatabase(`${pair.name}_race`);
    const clients = await Promise.all([1, 2, 3, 4].map(() => connect(dsn, 'database')));
    try {
      const results = await Promise.all(clients.map((c) => installSchema(c)));
      const applied = results.flatMap((r) => r.applied).sort();
      expect(applied).toEqual(nodeMigrations.map((m) => m.version).sort());
      const { rows } = await (clients[0] as Client).query('SELECT count(*)::int AS n FROM syncguard.migration');
      expect(rows[0]?.n).toBe(nodeMigrations.length);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('ends an upgrade from every earlier version with the same catalogue as a fresh install', async () => {
    const fresh = await connect(await freshDatabase(`${pair.name}_fresh`), 'database');
    await installSchema(fresh);
    const expected = await schemaDump(fresh, 'syncguard');
    await fresh.close();
    expect(expected).toContain('\nCREATE OR REPLACE FUNCTION syncguard.recompute');
    for (let from = 1; from < nodeMigrations.length; from++) {
      const c = await connect(await freshDatabase(`${pair.name}_up${from}`), 'database');
      try {
        const partial = await installSchema(c, 'database', { upTo: from });
        expect(partial.toVersion).toBe(from);
        const upgrade = await installSchema(c);
        expect(upgrade.fromVersion).toBe(from);
        expect(await schemaDump(c, 'syncguard')).toBe(expected);
      } finally {
        await c.close();
      }
    }
  });

  it('refuses a schema newer than this syncguard and changes nothing', async () => {
    const c = await connect(await freshDatabase(`${pair.name}_newer`), 'database');
    try {
      await installSchema(c);
      await c.query("INSERT INTO syncguard.migration (version, name) VALUES (999, 'future')");
      await expect(installSchema(c)).rejects.toThrow(/version 999, newer than this syncguard/);
    } finally {
      await c.close();
    }
  });

  it('refuses to replace definitions a newer release wrote at the same schema version, and changes nothing', async () => {
    const c = await connect(await freshDatabase(`${pair.name}_newdefs`), 'database');
    try {
      await installSchema(c);
      // a later release with the same migrations and other definitions (one comment added)
      const later: Definitions = {
        ...nodeDefinitions,
        checksum: 'feedfacefeedface',
        release: '99.0.0',
        files: nodeDefinitions.files.map((f, i) => (i === 0 ? { ...f, sql: `-- a later release\n${f.sql}` } : f)),
      };
      expect(await installSchema(c, 'database', { definitions: later })).toMatchObject({ applied: [], definitions: true });
      expect(await readInstalledDefinitions(c)).toEqual({ checksum: 'feedfacefeedface', release: '99.0.0' });
      // this release may not take the node back
      await expect(installSchema(c)).rejects.toThrow(NewerDefinitionsError);
      await expect(installSchema(c)).rejects.toThrow(
        /written by syncguard 99\.0\.0, newer than this syncguard \(\d+\.\d+\.\d+\); nothing was changed/,
      );
      expect(await readInstalledDefinitions(c)).toEqual({ checksum: 'feedfacefeedface', release: '99.0.0' });
      // and a reader of this release says to upgrade syncguard, not to install again
      await expect(requireInstalled(c, 'database')).rejects.toThrow(
        /installed by syncguard 99\.0\.0, newer than this syncguard .*; upgrade syncguard/,
      );
      // the same release with other definitions (a developer's build) may, and so may a newer one
      const again = { ...nodeDefinitions, release: '99.0.0' };
      expect(await installSchema(c, 'database', { definitions: again })).toMatchObject({ definitions: true });
      expect(await readInstalledDefinitions(c)).toEqual({ checksum: nodeDefinitions.checksum, release: '99.0.0' });
      // equal definitions: nothing to do, whoever wrote them
      expect(await installSchema(c)).toMatchObject({ applied: [], definitions: false });
    } finally {
      await c.close();
    }
  });

  it('gives a subscriber cloned from its publisher (same node id) a new identity, keeping its rows', async () => {
    const publisher = await connect(await freshDatabase(`${pair.name}_origin`), 'publisher');
    const clone = await connect(await freshDatabase(`${pair.name}_clone`), 'subscriber');
    try {
      await installSchema(publisher);
      await installSchema(clone);
      // what a physical copy of the publisher looks like: the same node_id body and rows keyed by it
      const origin = await nodeId(publisher);
      const own = await nodeId(clone);
      await clone.query(
        `CREATE OR REPLACE FUNCTION syncguard.node_id() RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$SELECT '${origin}'::uuid$$`,
      );
      await clone.query('UPDATE syncguard.migration SET node_id = $1 WHERE node_id = $2', [origin, own]);
      expect(await nodeId(clone)).toBe(origin);

      const r = await installPair(publisher, clone);
      expect(r.reidentified).toBe(true);
      expect(r.subscriber.nodeId).not.toBe(origin);
      expect(await nodeId(clone)).toBe(r.subscriber.nodeId);
      expect(await installedVersions(clone)).toEqual(nodeMigrations.map((m) => m.version));
      expect((await installPair(publisher, clone)).reidentified).toBe(false);
    } finally {
      await publisher.close();
      await clone.close();
    }
  });
});
