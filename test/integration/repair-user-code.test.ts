// A repair never runs the table owner's code with syncguard's rights (issue 17, item 8), against
// real replication. The tables belong to app_owner, not to syncguard's owner; on the subscriber one
// has an ENABLE ALWAYS trigger, one a CHECK, one an index expression and one a subscriber-only
// column's DEFAULT, each calling a function of schema app that records current_user. A plan is
// refused naming the trigger or expression, and a repair request sent past the plan's check is
// refused by the subscriber's trigger: app's function never runs as syncguard's owner.

import { describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import { sendRepair } from '../../functions/db/repair.js';
import { inspectBucket, probeTargetOf } from '../../functions/flows/inspect.js';
import { awaitAnswers } from '../../functions/flows/probes.js';
import { planBucket, planFromInspection } from '../../functions/flows/repair.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const TABLES = ['public.uc_trig', 'public.uc_check', 'public.uc_index', 'public.uc_default'];

const ctx = usePair({
  label: 'rucode',
  tables: TABLES,
  async prepare(pair) {
    for (const c of [pair.pub, pair.sub]) {
      await c
        .query(
          `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_owner') THEN CREATE ROLE app_owner NOLOGIN; END IF; END $$`,
        )
        .catch(() => {});
      await c.query(`
        CREATE SCHEMA app AUTHORIZATION app_owner;
        CREATE TABLE app.calls (who name, what text);
        GRANT USAGE ON SCHEMA app TO PUBLIC; GRANT INSERT ON app.calls TO PUBLIC;
        CREATE FUNCTION app.spy(text) RETURNS boolean LANGUAGE plpgsql AS
          $$ BEGIN INSERT INTO app.calls VALUES (current_user, $1); RETURN true; END $$;
        CREATE FUNCTION app.norm(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower($1) $$;
        CREATE FUNCTION app.spy_text() RETURNS text LANGUAGE plpgsql AS
          $$ BEGIN INSERT INTO app.calls VALUES (current_user, 'default'); RETURN 'x'; END $$;
        CREATE FUNCTION app.spy_trg() RETURNS trigger LANGUAGE plpgsql AS
          $$ BEGIN INSERT INTO app.calls VALUES (current_user, 'trigger'); RETURN NEW; END $$;
        ALTER FUNCTION app.spy(text) OWNER TO app_owner; ALTER FUNCTION app.norm(text) OWNER TO app_owner; ALTER FUNCTION app.spy_text() OWNER TO app_owner;
        ALTER FUNCTION app.spy_trg() OWNER TO app_owner;
        GRANT app_owner TO sg_owner;`);
      for (const t of TABLES) await c.query(`CREATE TABLE ${t} (id int PRIMARY KEY, v text); ALTER TABLE ${t} OWNER TO app_owner`);
    }
    await pair.sub.query(`
      CREATE TRIGGER spy BEFORE INSERT OR UPDATE ON public.uc_trig FOR EACH ROW EXECUTE FUNCTION app.spy_trg();
      ALTER TABLE public.uc_trig ENABLE ALWAYS TRIGGER spy;
      ALTER TABLE public.uc_check ADD CONSTRAINT spy_check CHECK (app.spy(v));
      CREATE INDEX uc_index_spy ON public.uc_index (app.norm(v));
      ALTER TABLE public.uc_default ADD COLUMN sub_only text DEFAULT app.spy_text();`);
    for (const t of TABLES) await pair.pub.query(`INSERT INTO ${t} SELECT i, 'v' || i FROM generate_series(1, 200) i`);
  },
  async ready({ pub, sub }) {
    for (const t of TABLES) await register(pub, sub, t, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

async function callsBySyncguardOwner(): Promise<number> {
  const { rows } = await ctx.pair.sub.query<{ n: string }>("SELECT count(*) AS n FROM app.calls WHERE who = 'sg_owner'");
  return Number(rows[0]?.n);
}

describe('item 8: no repair runs the table owner code as syncguard', () => {
  it('refuses to plan, naming the trigger, the check, the index expression and the default', async () => {
    const expected: Record<string, RegExp> = {
      'public.uc_trig': /trigger spy .*app\.spy_trg/,
      'public.uc_check': /check constraint spy_check .*app\.spy/,
      'public.uc_index': /index uc_index_spy .*app\.norm/,
      'public.uc_default': /default of column sub_only .*app\.spy_text/,
    };
    for (const t of TABLES) {
      await ctx.pair.sub.query(`DELETE FROM ${t} WHERE id = 5`);
      await settle(ctx.sub);
      await expect(planBucket(ctx.pub, ctx.sub, parseTableName(t), '0', { pair: 'u' }), t).rejects.toThrow(
        expect.objectContaining({ name: 'IncompatibleError', message: expect.stringMatching(expected[t] as RegExp) }),
      );
    }
    expect(await callsBySyncguardOwner()).toBe(0);
  });

  it("refuses on the subscriber a request sent past the plan's check", async () => {
    const table = parseTableName('public.uc_trig');
    const ins = await inspectBucket(ctx.pub, ctx.sub, table, '0');
    const plan = planFromInspection(ins, { pair: 'u' });
    expect(plan.rowCount).toBe(1);
    const t = await probeTargetOf(ctx.pub, ctx.sub, table);
    const sent = await sendRepair(ctx.pub, {
      table,
      bucket: '0',
      changes: plan.changes,
      plan: 'past-the-check',
      target: t.target,
      subscription: t.subscription,
      lockTimeoutMs: 20,
    });
    const waited = await awaitAnswers(ctx.sub, t.origin, [sent.id as string], Date.now() + 10_000, [t.subscription]);
    const answer = waited.answers.get(sent.id as string)?.answer as { changes: { outcome: string; error?: string }[] };
    expect(answer.changes).toEqual([expect.objectContaining({ outcome: 'refused', error: expect.stringMatching(/trigger spy/) })]);
    expect(await callsBySyncguardOwner()).toBe(0); // before the fix: the trigger ran as sg_owner
  });
});
