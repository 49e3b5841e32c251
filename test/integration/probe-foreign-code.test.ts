// The probe functions and the trigger refuse while syncguard.probe has foreign code: the publisher
// sends no probe while the table has a trigger it did not create, and the subscriber answers none
// while its copy has a default it did not create; against real replication.

import { describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import { Deadline } from '../../functions/db/deadline.js';
import { probeTargetOf } from '../../functions/flows/inspect.js';
import { CheckedPair } from '../../functions/flows/pair.js';
import { awaitAnswers } from '../../functions/flows/probes.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.ri_rows';

const ctx = usePair({
  label: 'rinsp',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, v text);`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(0, 999) i;`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

const table = parseTableName(T);

describe('foreign code on syncguard.probe', () => {
  it('the publisher refuses to send any probe while syncguard.probe has a trigger it did not create', async () => {
    await ctx.pair.pub.query(`
      CREATE FUNCTION public.sg_foreign() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
      CREATE TRIGGER sg_foreign_trg BEFORE INSERT ON syncguard.probe FOR EACH ROW EXECUTE FUNCTION public.sg_foreign();`);
    try {
      const t = await probeTargetOf(await CheckedPair.open(ctx.pub, ctx.sub), table).catch(() => null);
      const target = t?.target ?? '00000000-0000-0000-0000-000000000000';
      const sub = t?.subscription ?? ctx.pair.name;
      const calls: [string, unknown[]][] = [
        ['SELECT syncguard.probe_rows($1, $2, $3, $4, $5)', [table.schema, table.table, 0, target, sub]],
        ['SELECT syncguard.probe_buckets($1, $2, $3, $4, $5)', [table.schema, table.table, [0], target, sub]],
        [
          'SELECT syncguard.repair_request($1, $2, $3, $4, $5, $6, $7)',
          [table.schema, table.table, 0, JSON.stringify([{ key: '(1)', op: 'upsert', subHash: null, pubHash: null }]), 'x', target, sub],
        ],
      ];
      for (const [sql, params] of calls) {
        await ctx.pub.query('BEGIN');
        const err = await ctx.pub.query(sql, params).then(
          () => null,
          (e: Error) => e,
        );
        await ctx.pub.query('ROLLBACK');
        expect(err?.message, sql).toMatch(/sends no probe: trigger sg_foreign_trg on probe/); // before the fix: sent
      }
    } finally {
      await ctx.pair.pub.query('DROP TRIGGER sg_foreign_trg ON syncguard.probe; DROP FUNCTION public.sg_foreign()');
    }
  });

  it('the subscriber answers no probe while its syncguard.probe has a default it did not create', async () => {
    const t = await probeTargetOf(await CheckedPair.open(ctx.pub, ctx.sub), table);
    await ctx.pair.sub.query(`ALTER TABLE syncguard.probe ALTER COLUMN fingerprint SET DEFAULT 'foreign'`);
    try {
      await ctx.pub.query('BEGIN');
      const { rows } = await ctx.pub.query<{ r: { id: string } }>('SELECT syncguard.probe_buckets($1, $2, $3, $4, $5) AS r', [
        table.schema,
        table.table,
        [0],
        t.target,
        t.subscription,
      ]);
      await ctx.pub.query('COMMIT');
      const id = String(rows[0]?.r.id);
      const waited = await awaitAnswers(ctx.sub, t.origin, [id], Deadline.after(10_000), [t.subscription]);
      const a = waited.answers.get(id);
      expect(a?.ok).toBe(false); // before the fix: answered
      expect(a?.error).toMatch(/answers no probe: a default on column fingerprint on probe/);
    } finally {
      await ctx.pair.sub.query('ALTER TABLE syncguard.probe ALTER COLUMN fingerprint DROP DEFAULT');
    }
  });
});
