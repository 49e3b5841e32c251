// A repair never runs the table owner's code with syncguard's rights (issue 17, item 8), against
// real replication. The tables belong to app_owner, not to syncguard's owner; on the subscriber one
// has an ENABLE ALWAYS trigger, one a CHECK, one an index expression and one a subscriber-only
// column's DEFAULT, each calling a function of schema app that records current_user. A plan is
// refused naming the trigger or expression, and a repair request sent past the plan's check is
// refused by the subscriber's trigger: app's function never runs as syncguard's owner.

import { describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import { Deadline } from '../../functions/db/deadline.js';
import { sendRepair } from '../../functions/db/repair.js';
import { inspectBucket, probeTargetOf } from '../../functions/flows/inspect.js';
import { CheckedPair } from '../../functions/flows/pair.js';
import { awaitAnswers } from '../../functions/flows/probes.js';
import { planBucket, planFromInspection } from '../../functions/flows/repair.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const TABLES = ['public.uc_trig', 'public.uc_check', 'public.uc_index', 'public.uc_default'];
// review of item 8: a user cast from text (subscriber), a domain default of a left-out column, a
// domain CHECK inside a composite column, a user cast to text on the publisher, and a default of a
// column the repair always writes (allowed)
const MORE = ['public.uc_cast', 'public.uc_ddef', 'public.uc_nested', 'public.uc_pubcast', 'public.uc_written', 'public.uc_differs'];

const ctx = usePair({
  label: 'rucode',
  tables: [...TABLES, ...MORE],
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
      // the subscriber's copy checks its values with app's function, the publisher's does not
      await c.query(
        c === pair.sub
          ? 'CREATE DOMAIN app.chkd AS text CHECK (app.spy(VALUE)); ALTER DOMAIN app.chkd OWNER TO app_owner'
          : 'CREATE DOMAIN app.chkd AS text; ALTER DOMAIN app.chkd OWNER TO app_owner',
      );
      for (const t of TABLES) await c.query(`CREATE TABLE ${t} (id int PRIMARY KEY, v text); ALTER TABLE ${t} OWNER TO app_owner`);
    }
    await pair.sub.query(`
      CREATE TRIGGER spy BEFORE INSERT OR UPDATE ON public.uc_trig FOR EACH ROW EXECUTE FUNCTION app.spy_trg();
      ALTER TABLE public.uc_trig ENABLE ALWAYS TRIGGER spy;
      ALTER TABLE public.uc_check ADD CONSTRAINT spy_check CHECK (app.spy(v));
      CREATE INDEX uc_index_spy ON public.uc_index (app.norm(v));
      ALTER TABLE public.uc_default ADD COLUMN sub_only text DEFAULT app.spy_text();`);
    for (const c of [pair.pub, pair.sub]) {
      await c.query(`
        CREATE TYPE app.mood AS ENUM ('calm', 'busy'); CREATE TYPE app.mood2 AS ENUM ('calm', 'busy');
        CREATE TYPE app.pair AS (a int, b app.chkd);
        CREATE TABLE public.uc_cast (id int PRIMARY KEY, v text, m app.mood);
        CREATE TABLE public.uc_ddef (id int PRIMARY KEY, v text);
        CREATE TABLE public.uc_nested (id int PRIMARY KEY, v text, p app.pair);
        CREATE TABLE public.uc_pubcast (id int PRIMARY KEY, v text, m app.mood2);
        CREATE TABLE public.uc_written (id int PRIMARY KEY, v text);
        CREATE TABLE public.uc_differs (id int PRIMARY KEY, v text);
        ALTER TYPE app.mood OWNER TO app_owner; ALTER TYPE app.mood2 OWNER TO app_owner; ALTER TYPE app.pair OWNER TO app_owner;`);
      for (const t of MORE) await c.query(`ALTER TABLE ${t} OWNER TO app_owner`);
    }
    await pair.sub.query(`
      CREATE FUNCTION app.mood_in(text) RETURNS app.mood LANGUAGE plpgsql AS
        $$ DECLARE m app.mood; BEGIN INSERT INTO app.calls VALUES (current_user, 'cast');
           SELECT e INTO m FROM unnest(enum_range(NULL::app.mood)) e WHERE e::text = $1; RETURN m; END $$;
      ALTER FUNCTION app.mood_in(text) OWNER TO app_owner;
      SET ROLE app_owner; CREATE CAST (text AS app.mood) WITH FUNCTION app.mood_in(text); RESET ROLE;
      CREATE DOMAIN app.dd AS text DEFAULT app.spy_text(); ALTER DOMAIN app.dd OWNER TO app_owner;
      ALTER TABLE public.uc_ddef ADD COLUMN sub_only app.dd;
      ALTER TABLE public.uc_written ALTER COLUMN v SET DEFAULT app.spy_text();
      -- finding 3: a table of syncguard's owner (its code is allowed) whose trigger changes what a repair writes
      ALTER TABLE public.uc_differs OWNER TO sg_owner; GRANT ALL ON public.uc_differs TO PUBLIC;
      CREATE FUNCTION public.uc_mangle() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.v := NEW.v || '-mangled'; RETURN NEW; END $$;
      CREATE TRIGGER mangle BEFORE INSERT ON public.uc_differs FOR EACH ROW WHEN (NEW.id = 5) EXECUTE FUNCTION public.uc_mangle();`);
    await pair.pub.query(`
      CREATE FUNCTION app.mood2_out(app.mood2) RETURNS text LANGUAGE plpgsql AS
        $$ BEGIN INSERT INTO app.calls VALUES (current_user, 'cast out'); RETURN enum_out($1)::text; END $$;
      ALTER FUNCTION app.mood2_out(app.mood2) OWNER TO app_owner;
      SET ROLE app_owner; CREATE CAST (app.mood2 AS text) WITH FUNCTION app.mood2_out(app.mood2); RESET ROLE;`);
    for (const t of TABLES) await pair.pub.query(`INSERT INTO ${t} SELECT i, 'v' || i FROM generate_series(1, 200) i`);
    for (const t of ['public.uc_ddef', 'public.uc_written', 'public.uc_differs'])
      await pair.pub.query(`INSERT INTO ${t} SELECT i, 'v' || i FROM generate_series(1, 200) i`);
    await pair.pub.query(`INSERT INTO public.uc_cast SELECT i, 'v' || i, 'calm' FROM generate_series(1, 200) i`);
    await pair.pub.query(`INSERT INTO public.uc_pubcast SELECT i, 'v' || i, 'busy' FROM generate_series(1, 200) i`);
    await pair.pub.query(`INSERT INTO public.uc_nested SELECT i, 'v' || i, ROW(i, 'b')::app.pair FROM generate_series(1, 200) i`);
  },
  async ready({ pub, sub }) {
    for (const t of [...TABLES, ...MORE]) await register(pub, sub, t, { bucketSize: 100 });
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
    const t = await probeTargetOf(await CheckedPair.open(ctx.pub, ctx.sub), table);
    const sent = await sendRepair(ctx.pub, {
      table,
      bucket: '0',
      changes: plan.changes,
      inspection: plan.inspection,
      plan: 'past-the-check',
      target: t.target,
      subscription: t.subscription,
      scheme: t.scheme,
      lockTimeoutMs: 20,
    });
    const waited = await awaitAnswers(ctx.sub, t.origin, [sent.id as string], Deadline.after(10_000), [t.subscription]);
    const answer = waited.answers.get(sent.id as string)?.answer as { changes: { outcome: string; error?: string }[] };
    expect(answer.changes).toEqual([expect.objectContaining({ outcome: 'refused', error: expect.stringMatching(/trigger spy/) })]);
    expect(await callsBySyncguardOwner()).toBe(0); // before the fix: the trigger ran as sg_owner
  });

  it('refuses a user cast from text, a domain default of a left-out column and a domain check inside a composite', async () => {
    const expected: Record<string, RegExp> = {
      'public.uc_cast': /cast from text to app\.mood .*app\.mood_in/,
      'public.uc_ddef': /default of domain app\.dd \(column sub_only.*app\.spy_text/,
      'public.uc_nested': /check constraint .* of domain app\.chkd \(in column p .*app\.spy/,
    };
    const before = await callsBySyncguardOwner();
    for (const t of Object.keys(expected)) {
      await ctx.pair.sub.query(`DELETE FROM ${t} WHERE id = 5`);
      await settle(ctx.sub);
      await expect(planBucket(ctx.pub, ctx.sub, parseTableName(t), '0', { pair: 'u' }), t).rejects.toThrow(
        expect.objectContaining({ name: 'IncompatibleError', message: expect.stringMatching(expected[t] as RegExp) }),
      );
    }
    // sent past the plan's check: the subscriber refuses, the cast never runs as syncguard's owner
    const table = parseTableName('public.uc_cast');
    const plan = planFromInspection(await inspectBucket(ctx.pub, ctx.sub, table, '0'), { pair: 'u' });
    const t = await probeTargetOf(await CheckedPair.open(ctx.pub, ctx.sub), table);
    const sent = await sendRepair(ctx.pub, {
      table,
      bucket: '0',
      changes: plan.changes,
      inspection: plan.inspection,
      plan: 'cast',
      target: t.target,
      subscription: t.subscription,
      scheme: t.scheme,
      lockTimeoutMs: 1000,
    });
    const waited = await awaitAnswers(ctx.sub, t.origin, [sent.id as string], Deadline.after(10_000), [t.subscription]);
    const answer = waited.answers.get(sent.id as string)?.answer as { changes: { outcome: string; error?: string }[] };
    expect(answer.changes).toEqual([expect.objectContaining({ outcome: 'refused', error: expect.stringMatching(/cast from text/) })]);
    expect(await callsBySyncguardOwner()).toBe(before); // before the fix: app.mood_in ran as sg_owner
  });

  it("refuses on the publisher a table whose rows it would read with the owner's cast", async () => {
    const table = parseTableName('public.uc_pubcast');
    const t = await probeTargetOf(await CheckedPair.open(ctx.pub, ctx.sub), table);
    const pubCalls = async () =>
      Number((await ctx.pair.pub.query<{ n: string }>("SELECT count(*) AS n FROM app.calls WHERE who = 'sg_owner'")).rows[0]?.n);
    await ctx.pair.sub.query('DELETE FROM public.uc_pubcast WHERE id = 5');
    await settle(ctx.sub);
    const plan = planFromInspection(await inspectBucket(ctx.pub, ctx.sub, table, '0'), { pair: 'u' });
    const before = await pubCalls();
    await expect(
      sendRepair(ctx.pub, {
        table,
        bucket: '0',
        changes: plan.changes,
        inspection: plan.inspection,
        plan: 'pubcast',
        target: t.target,
        subscription: t.subscription,
        scheme: t.scheme,
        lockTimeoutMs: 1000,
      }),
    ).rejects.toThrow(/cast from app\.mood2 to text/);
    expect(await pubCalls()).toBe(before);
  });

  it('repairs a table whose written column has a default calling app code (it never runs)', async () => {
    const table = parseTableName('public.uc_written');
    await ctx.pair.sub.query('DELETE FROM public.uc_written WHERE id = 5');
    await settle(ctx.sub);
    const before = await callsBySyncguardOwner();
    const plan = planFromInspection(await inspectBucket(ctx.pub, ctx.sub, table, '0'), { pair: 'u' });
    expect(plan.rowCount).toBe(1);
    const t = await probeTargetOf(await CheckedPair.open(ctx.pub, ctx.sub), table);
    const sent = await sendRepair(ctx.pub, {
      table,
      bucket: '0',
      changes: plan.changes,
      inspection: plan.inspection,
      plan: 'written',
      target: t.target,
      subscription: t.subscription,
      scheme: t.scheme,
      lockTimeoutMs: 1000,
    });
    const waited = await awaitAnswers(ctx.sub, t.origin, [sent.id as string], Deadline.after(10_000), [t.subscription]);
    const answer = waited.answers.get(sent.id as string)?.answer as { changes: { outcome: string }[] };
    expect(answer.changes).toEqual([expect.objectContaining({ outcome: 'applied' })]); // before the fix: refused
    expect(await callsBySyncguardOwner()).toBe(before);
  });

  it("lists a partitioned table's ENABLE ALWAYS trigger on its partitions (the clones)", async () => {
    await ctx.pair.sub.query(`
      CREATE TABLE public.uc_part (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
      CREATE TABLE public.uc_part_1 PARTITION OF public.uc_part FOR VALUES FROM (0) TO (1000);
      ALTER TABLE public.uc_part OWNER TO app_owner; ALTER TABLE public.uc_part_1 OWNER TO app_owner;
      CREATE TRIGGER spy BEFORE INSERT ON public.uc_part FOR EACH ROW EXECUTE FUNCTION app.spy_trg();
      ALTER TABLE public.uc_part ENABLE ALWAYS TRIGGER spy;`);
    const { rows } = await ctx.pair.sub.query<{ c: string[] }>("SELECT syncguard.repair_user_code('public', 'uc_part_1') AS c");
    expect(rows[0]?.c).toEqual([expect.stringMatching(/trigger spy on public\.uc_part_1 \(ENABLE ALWAYS\) runs app\.spy_trg/)]);
  });

  it('rolls back a written row that does not hash as the publisher row, recording the change as failed', async () => {
    await ctx.pair.sub.query('ALTER TABLE public.uc_differs ENABLE ALWAYS TRIGGER mangle; DELETE FROM public.uc_differs WHERE id = 5');
    await settle(ctx.sub);
    const table = parseTableName('public.uc_differs');
    const plan = planFromInspection(await inspectBucket(ctx.pub, ctx.sub, table, '0'), { pair: 'u' });
    expect(plan.rowCount).toBe(1);
    const t = await probeTargetOf(await CheckedPair.open(ctx.pub, ctx.sub), table);
    const sent = await sendRepair(ctx.pub, {
      table,
      bucket: '0',
      changes: plan.changes,
      inspection: plan.inspection,
      plan: 'differs',
      target: t.target,
      subscription: t.subscription,
      scheme: t.scheme,
      lockTimeoutMs: 1000,
    });
    const waited = await awaitAnswers(ctx.sub, t.origin, [sent.id as string], Deadline.after(10_000), [t.subscription]);
    const answer = waited.answers.get(sent.id as string)?.answer as { changes: { outcome: string; error?: string }[] };
    // before the fix: outcome applied_but_differs and the row left as 'v5-mangled'
    expect(answer.changes).toEqual([expect.objectContaining({ outcome: 'failed', error: expect.stringMatching(/rolled back/) })]);
    const { rows } = await ctx.pair.sub.query('SELECT v FROM public.uc_differs WHERE id = 5');
    expect(rows).toEqual([]);
  });
});
