// Installing the node schema: idempotent, safe under racing installers, as a non-superuser, and an
// upgrade from any earlier version ends with the same catalogue as a fresh install.

import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createPair, OWNER, type Pair } from '../../dev/pair.js';
import { connect } from '../../functions/db/connect.js';
import { nodeMigrations } from '../../functions/db/generated/migrations.js';
import { installedVersions, installPair, installSchema, nodeId } from '../../functions/db/install.js';

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

/** Everything in the syncguard schema that defines it, as sorted text (node id masked). */
async function catalogueDump(c: pg.Client): Promise<string> {
  const { rows: id } = await c.query<{ id: string }>('SELECT syncguard.node_id()::text AS id');
  const { rows } = await c.query<{ line: string }>(`
    SELECT format('rel %s %s %s', c.relname, c.relkind, c.relpersistence) AS line
      FROM pg_class c WHERE c.relnamespace = 'syncguard'::regnamespace
    UNION ALL
    SELECT format('col %s.%s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relnamespace = 'syncguard'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT format('con %s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint WHERE connamespace = 'syncguard'::regnamespace
    UNION ALL
    SELECT format('idx %s', pg_get_indexdef(indexrelid)) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
     WHERE c.relnamespace = 'syncguard'::regnamespace
    UNION ALL
    SELECT format('fn %s', pg_get_functiondef(p.oid)) FROM pg_proc p WHERE p.pronamespace = 'syncguard'::regnamespace
    UNION ALL
    SELECT format('view %s %s', viewname, definition) FROM pg_views WHERE schemaname = 'syncguard'
    ORDER BY 1`);
  return rows.map((r) => r.line.replaceAll(id[0]?.id ?? '', '<node-id>')).join('\n');
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
      await c.end();
    }
  });

  it('is safe when several installers race: all succeed, each migration applies once', async () => {
    const dsn = await freshDatabase(`${pair.name}_race`);
    const clients = await Promise.all([1, 2, 3, 4].map(() => connect(dsn, 'database')));
    try {
      const results = await Promise.all(clients.map((c) => installSchema(c)));
      const applied = results.flatMap((r) => r.applied).sort();
      expect(applied).toEqual(nodeMigrations.map((m) => m.version).sort());
      const { rows } = await (clients[0] as pg.Client).query('SELECT count(*)::int AS n FROM syncguard.migration');
      expect(rows[0]?.n).toBe(nodeMigrations.length);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it('ends an upgrade from every earlier version with the same catalogue as a fresh install', async () => {
    const fresh = await connect(await freshDatabase(`${pair.name}_fresh`), 'database');
    await installSchema(fresh);
    const expected = await catalogueDump(fresh);
    await fresh.end();
    expect(expected).toContain('fn CREATE OR REPLACE FUNCTION syncguard.recompute');
    for (let from = 1; from < nodeMigrations.length; from++) {
      const c = await connect(await freshDatabase(`${pair.name}_up${from}`), 'database');
      try {
        const partial = await installSchema(c, 'database', from);
        expect(partial.toVersion).toBe(from);
        const upgrade = await installSchema(c);
        expect(upgrade.fromVersion).toBe(from);
        expect(await catalogueDump(c)).toBe(expected);
      } finally {
        await c.end();
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
      await c.end();
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
      await publisher.end();
      await clone.end();
    }
  });
});
