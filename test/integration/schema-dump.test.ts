// The committed schema dumps (sql/schema/*.dump, written by npm run schema:dump) are what a fresh
// install creates, and an upgrade of the control plane from every earlier version ends with the
// fresh install's dump (install.test.ts checks the same for the node schema). A change to sql/
// that is not in the dumps fails here, so a reviewer sees every changed definition, owner and
// grant in the diff of one file.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { superuserDsn } from '../../dev/cluster.js';
import { plainNode } from '../../dev/plain-node.js';
import { DUMP_INSTALLER, DUMP_INSTALLER_PASSWORD, ensureDumpInstaller, freshInstallDumps, schemaDump } from '../../dev/schema-dump.js';
import { type Client, connect } from '../../functions/db/connect.js';
import { controlMigrations } from '../../functions/db/generated/migrations.js';
import { installControl } from '../../functions/db/install.js';

const cluster = inject('publisherCluster');
const dsn = (db: string, user: string, pw: string) => `postgres://${user}:${pw}@${cluster.host}:${cluster.port}/${db}`;
let admin: Client;

beforeAll(async () => {
  admin = await plainNode(superuserDsn(cluster));
  await ensureDumpInstaller(admin);
});

afterAll(async () => {
  const { rows } = await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE 'sg\\_dump\\_%'");
  for (const r of rows) await admin.query(`DROP DATABASE ${r.datname} WITH (FORCE)`);
  await admin.close();
});

const committed = (file: string) => readFileSync(join(import.meta.dirname, '../../sql/schema', file), 'utf8');
const HINT =
  'the schema an install creates differs from the committed dump: run npm run schema:dump and commit sql/schema/ if the change is intended';

describe('the committed schema dumps', () => {
  let dumps: Awaited<ReturnType<typeof freshInstallDumps>>;
  beforeAll(async () => {
    dumps = await freshInstallDumps(admin, dsn, 'test');
  });

  it('are what a fresh install of the node schema creates', () => {
    expect(dumps.syncguard.split('\n'), HINT).toEqual(committed('node.dump').split('\n'));
  });

  it('are what a fresh install of the control plane creates', () => {
    expect(dumps.syncguard_control.split('\n'), HINT).toEqual(committed('control.dump').split('\n'));
  });

  it('hold every function with its security and settings, owner and grants', () => {
    expect(dumps.syncguard).toMatch(
      /^fn syncguard\.drain_batch\(integer,name\[\],name\[\]\) owner=<installer> acl=\{<installer>=X\/<installer>\}\n.*SECURITY DEFINER\n SET search_path TO 'pg_catalog', 'pg_temp'/ms,
    );
    expect(dumps.syncguard).toMatch(/^trg CREATE TRIGGER syncguard_probe BEFORE INSERT ON syncguard\.probe .* enabled=A$/m);
  });
});

describe('upgrading the control plane', () => {
  it('ends from every earlier version with the fresh install dump', async () => {
    const expected = committed('control.dump');
    for (let from = 1; from < controlMigrations.length; from++) {
      const db = `sg_dump_control_up${from}`;
      await admin.query(`CREATE DATABASE ${db} OWNER ${DUMP_INSTALLER}`);
      const c = await connect(dsn(db, DUMP_INSTALLER, DUMP_INSTALLER_PASSWORD), 'control-plane database');
      try {
        expect((await installControl(c, { upTo: from })).toVersion).toBe(from);
        expect((await installControl(c)).fromVersion).toBe(from);
        expect(await schemaDump(c, 'syncguard_control')).toBe(expected);
      } finally {
        await c.close();
      }
    }
  });
});
