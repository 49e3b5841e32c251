// Issue 18 item 1: install re-applies the current definitions (sql/node/current) on a subscriber
// whose apply goes on under writes. The next release is simulated: its definitions change the body
// of the generated trigger functions (rebuilt in place on the apply path) and the shape of a
// function the probe trigger calls (_probe_values: an argument renamed, which CREATE OR REPLACE
// refuses), with and without the migration that drops the old one (docs/schema.md "A definition
// whose shape changes"). The subscription is owned by a non-superuser other than the installer.

import { afterAll, describe, expect, inject, it } from 'vitest';
import { superuserDsn } from '../../dev/cluster.js';
import { parseTableName } from '../../functions/core/identifiers.js';
import type { Client } from '../../functions/db/connect.js';
import { DefinitionShapeError, installedDefinitions } from '../../functions/db/definitions.js';
import { type Definitions, type Migration, nodeDefinitions, nodeMigrations } from '../../functions/db/generated/migrations.js';
import { installSchema } from '../../functions/db/install.js';
import { bucketValues, type ProbeAnswer, readAnswers, sendProbe } from '../../functions/db/probe.js';
import { subscriptionApplyCheck } from '../../functions/flows/apply-rights.js';
import { applyErrorCount } from '../support/replication.js';
import { connectAs } from '../support/roles.js';
import { applyFix, disposeScenarios, type Opened, PW, type Scenario, scenario } from '../support/subscription-owner.js';
import { catalogue, differingBuckets, enableProbes, fromScratch, regId, settle } from '../support/syncguard.js';

const T = 'public.orders';
const MARK = '-- rebuilt by the next release';
const open: Opened[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterAll(async () => {
  await disposeScenarios(open);
});

/** The definitions with one file's text changed (each replacement must match). */
function changed(defs: Definitions, file: string, edit: (sql: string) => string, checksum: string): Definitions {
  return {
    ...defs,
    checksum,
    files: defs.files.map((f) => {
      if (f.file !== file) return f;
      const sql = edit(f.sql);
      if (sql === f.sql) throw new Error(`the edit of ${file} matched nothing`);
      return { ...f, sql };
    }),
  };
}

/** The next release's definitions: a marked trigger template, and _probe_values(p_reg, p_bucket_list). */
function nextRelease(): Definitions {
  const triggers = changed(
    nodeDefinitions,
    'sql/node/current/triggers.sql',
    (sql) => sql.replaceAll('\nDECLARE\n  sg_', `\nDECLARE\n  ${MARK}\n  sg_`),
    'aaaaaaaaaaaaaaa1',
  );
  return changed(
    triggers,
    'sql/node/current/probe.sql',
    (sql) => {
      const start = sql.indexOf('CREATE OR REPLACE FUNCTION syncguard._probe_values(');
      const end = sql.indexOf('$function$;', start);
      return sql.slice(0, start) + sql.slice(start, end).replaceAll('p_buckets', 'p_bucket_list') + sql.slice(end);
    },
    'aaaaaaaaaaaaaaa2',
  );
}

const latest = nodeMigrations.at(-1)?.version ?? 0;
const migration = (name: string, sql: string): Migration[] => [...nodeMigrations, { version: latest + 1, name, sql }];

/** A continuous writer on the publisher (inserts of new keys and updates of old ones), as the application's role. */
async function startWrites(s: Scenario, dsn: string): Promise<{ stop: () => Promise<number> }> {
  const c = await connectAs(dsn, s.writer, PW);
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      n++;
      await c.query(`INSERT INTO ${T} VALUES ($1, 'w')`, [1000 + n]);
      await c.query(`UPDATE ${T} SET v = v || 'u' WHERE id = $1`, [1 + (n % 300)]);
      await sleep(2);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      await c.close();
      return n;
    },
  };
}

async function applyPid(s: Scenario): Promise<number | null> {
  const { rows } = await s.pair.sub.query<{ pid: number | null }>(
    'SELECT pid FROM pg_stat_subscription WHERE subname = $1 AND relid IS NULL',
    [s.pair.name],
  );
  return rows[0]?.pid ?? null;
}

async function markSources(c: Client, table: string): Promise<string[]> {
  const id = await regId(c, table);
  const { rows } = await c.query<{ src: string }>(
    "SELECT prosrc AS src FROM pg_proc WHERE oid = to_regprocedure(syncguard._mark_fn($1) || '()')",
    [id],
  );
  return rows.map((r) => r.src);
}

/** The subscriber catches up: same row count and content as the publisher. */
async function caughtUp(s: Scenario): Promise<boolean> {
  const q = `SELECT count(*)::text || ':' || coalesce(md5(string_agg(id::text || v, ',' ORDER BY id)), '') AS d FROM ${T}`;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const [a, b] = await Promise.all([s.pair.pub.query<{ d: string }>(q), s.pair.sub.query<{ d: string }>(q)]);
    if (a.rows[0]?.d === b.rows[0]?.d) return true;
    await sleep(200);
  }
  return false;
}

describe('install replaces the definitions on a replicating subscriber under writes', () => {
  it('refuses a shape change without its migration, and a drop that would cascade; applies one with it; apply never stops', async () => {
    const publisher = inject('publisherCluster');
    const subscriber = inject('subscriberCluster');
    const s = await scenario(open, publisher, subscriber, 'defshape', T, false);
    // the subscription's owner may apply probes (the fix install prints), and probes are routed
    const fix = await subscriptionApplyCheck(s.sub, s.pair.name);
    if (!fix.ok) await applyFix(s, fix.fix);
    await enableProbes(s.pair);
    expect(await installedDefinitions(s.sub)).toBe(nodeDefinitions.checksum);
    const pid = await applyPid(s);
    expect(pid).not.toBeNull();
    const before = await markSources(s.sub, T);
    expect(before.length).toBe(1);
    expect(before[0]).not.toContain(MARK);
    const writes = await startWrites(s, superuserDsn(publisher, s.pair.name));
    try {
      const next = nextRelease();
      // 1. the renamed argument without the migration that drops the old function: refused, nothing changed
      await expect(installSchema(s.sub, 'subscriber', { definitions: next })).rejects.toThrow(DefinitionShapeError);
      await expect(installSchema(s.sub, 'subscriber', { definitions: next })).rejects.toThrow(
        /sql\/node\/current\/probe\.sql cannot replace .*parameter.*DROP FUNCTION/,
      );
      expect(await installedDefinitions(s.sub)).toBe(nodeDefinitions.checksum);
      expect(await markSources(s.sub, T)).toEqual(before);

      // 2. a migration that drops a function something depends on (the probe trigger): refused by
      //    PostgreSQL (no CASCADE), the install changes nothing
      await expect(
        installSchema(s.sub, 'subscriber', {
          migrations: migration('drop_in_use', 'DROP FUNCTION syncguard._probe_apply();'),
          definitions: next,
        }),
      ).rejects.toThrow(/depends on|other objects depend/);
      expect((await s.sub.query('SELECT max(version)::int AS v FROM syncguard.migration')).rows[0]?.v).toBe(latest);
      expect(await installedDefinitions(s.sub)).toBe(nodeDefinitions.checksum);

      // 3. the next release as it should be: the migration drops the old _probe_values, the
      //    definitions create the new one and rebuild the trigger functions in place
      const release = {
        migrations: migration('probe_values_shape', 'DROP FUNCTION syncguard._probe_values(integer, bigint[]);'),
        definitions: next,
      };
      const sub = await installSchema(s.sub, 'subscriber', release);
      expect(sub).toMatchObject({ applied: [latest + 1], definitions: true });
      const pub = await installSchema(s.pub, 'publisher', release);
      expect(pub).toMatchObject({ applied: [latest + 1], definitions: true });
      expect(await installedDefinitions(s.sub)).toBe(next.checksum);
      const after = await markSources(s.sub, T);
      expect(after.length).toBe(1);
      expect(after[0]).toContain(MARK);
      const { rows: args } = await s.sub.query<{ a: string[] }>(
        "SELECT proargnames AS a FROM pg_proc WHERE oid = 'syncguard._probe_values(integer, bigint[])'::regprocedure",
      );
      expect(args[0]?.a).toEqual(['p_reg', 'p_bucket_list']);
      // an install with nothing to do changes nothing
      expect(await installSchema(s.sub, 'subscriber', release)).toMatchObject({ applied: [], definitions: false });
      await sleep(500); // writes go on through the rebuilt trigger functions
    } finally {
      expect(await writes.stop()).toBeGreaterThan(0);
    }

    // the subscription never stopped: no apply error, the same apply worker, every row arrived
    expect(await caughtUp(s)).toBe(true);
    expect(await applyErrorCount(s.pair)).toBe(0);
    expect(await applyPid(s)).toBe(pid);
    expect((await s.sub.query('SELECT count(*)::int AS n FROM syncguard.fault')).rows[0]?.n).toBe(0);

    // every applied write was marked: drained, the subscriber's catalogue is its table's, and the publisher's
    await settle(s.pub);
    await settle(s.sub);
    const subCatalogue = await catalogue(s.sub, T);
    expect(differingBuckets(subCatalogue, await fromScratch(s.sub, T))).toEqual([]);
    expect(differingBuckets(subCatalogue, await catalogue(s.pub, T))).toEqual([]);

    // the probe trigger calls the new _probe_values on the apply path, at the publisher's position
    const target = (await s.sub.query<{ id: string }>('SELECT syncguard.node_id()::text AS id')).rows[0]?.id ?? '';
    const origin = (await s.pub.query<{ id: string }>('SELECT syncguard.node_id()::text AS id')).rows[0]?.id ?? '';
    const sent = await sendProbe(s.pub, {
      table: parseTableName(T),
      buckets: ['0', '1', '2'],
      target,
      subscription: s.pair.name,
      lockTimeoutMs: 5000,
    });
    let answer: ProbeAnswer | undefined;
    for (let i = 0; i < 150 && answer === undefined; i++) {
      answer = (await readAnswers(s.sub, origin, [sent.id])).get(sent.id);
      if (answer === undefined) await sleep(100);
    }
    const probeRows = (await s.sub.query('SELECT count(*)::int AS n FROM syncguard.probe WHERE id = $1', [sent.id])).rows[0]?.n;
    expect({ error: answer?.error ?? null, ok: answer?.ok, probeRows, applyErrors: await applyErrorCount(s.pair) }).toEqual({
      error: null,
      ok: true,
      probeRows: 1,
      applyErrors: 0,
    });
    expect(answer && bucketValues(answer)).toEqual(sent.values);
    expect(sent.values.size).toBeGreaterThan(0);
  });
});
