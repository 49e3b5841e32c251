// Install rebuilds every registration's generated trigger functions from the current templates,
// but not one whose trigger kind no longer fits its table: a publisher table registered with
// statement triggers that has since started to receive replicated changes (it became part of a
// cascade) wants row triggers. A row-level function behind statement triggers would fail the
// application's writes, so install leaves that registration's functions as they are, writes and
// replication go on, and health says to register the table again.

import { describe, expect, it } from 'vitest';
import { nodeDefinitions } from '../../functions/db/generated/migrations.js';
import { installSchema } from '../../functions/db/install.js';
import { registerPublisherOnly } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.kindflip';

const ctx = usePair({
  label: 'kindflip',
  tables: ['public.carried'],
  async prepare(pair) {
    await pair.both(`CREATE TABLE public.carried (id int PRIMARY KEY, v text);
                     CREATE TABLE ${T} (id int PRIMARY KEY, v text);`);
  },
});

const markSource = async () =>
  (
    await ctx.sub.query<{ src: string }>(
      "SELECT p.prosrc AS src FROM syncguard.registration r JOIN pg_proc p ON p.oid = to_regprocedure(syncguard._mark_fn(r.reg_id) || '()') WHERE r.table_name = 'kindflip'",
    )
  ).rows.map((r) => r.src);

describe('install and a registration whose trigger kind no longer fits', () => {
  it('leaves its trigger functions as they are; writes, replication and health go on', async () => {
    // on the subscriber database, a table it publishes onward, not (yet) replicated to it
    await registerPublisherOnly(ctx.sub, 'kindflip');
    const kinds = async () =>
      (
        await ctx.pair.sub.query<{ row: boolean }>(
          `SELECT DISTINCT (tgtype::int & 1) = 1 AS row FROM pg_trigger WHERE tgrelid = '${T}'::regclass AND tgname <> 'syncguard_truncate'`,
        )
      ).rows;
    expect(await kinds()).toEqual([{ row: false }]);
    const before = await markSource();
    expect(before).toHaveLength(1);
    expect(before[0]).toContain('sg_new'); // the statement-level function reads the transition table

    // the table starts to receive replicated changes: a row-trigger table now
    await ctx.pair.pub.query(`ALTER PUBLICATION ${ctx.pair.name} ADD TABLE ${T}`);
    await ctx.pair.sub.query(`ALTER SUBSCRIPTION ${ctx.pair.name} REFRESH PUBLICATION WITH (copy_data = false)`);
    expect(
      (
        await ctx.sub.query<{ row: boolean }>(
          "SELECT syncguard._row_triggers(r) AS row FROM syncguard.registration r WHERE r.table_name = 'kindflip'",
        )
      ).rows,
    ).toEqual([{ row: true }]);

    // a release with other definitions: install rebuilds the trigger functions, but not these
    const other = { ...nodeDefinitions, checksum: 'deadbeefdeadbeef' };
    try {
      expect(await installSchema(ctx.sub, 'subscriber', { definitions: other })).toMatchObject({ definitions: true });
      expect(await markSource()).toEqual(before);
      expect(await kinds()).toEqual([{ row: false }]);

      // an application write on the subscriber goes through its statement triggers, and is marked
      await ctx.pair.sub.query(`INSERT INTO ${T} VALUES (7, 'local')`);
      expect(
        (
          await ctx.sub.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM syncguard.dirty d JOIN syncguard.registration r USING (reg_id) WHERE r.table_name = 'kindflip'",
          )
        ).rows[0]?.n,
      ).toBeGreaterThan(0);
      // a replicated write is applied
      await ctx.pair.pub.query(`INSERT INTO ${T} VALUES (250, 'replicated')`);
      await ctx.pair.catchUp();
      expect((await ctx.pair.sub.query(`SELECT v FROM ${T} WHERE id = 250`)).rows).toEqual([{ v: 'replicated' }]);
      const { rows: errors } = await ctx.pair.sub.query<{ n: string }>(
        'SELECT coalesce(sum(apply_error_count + sync_error_count), 0)::text AS n FROM pg_stat_subscription_stats',
      );
      expect(errors[0]?.n).toBe('0');
      // and health says what happened and what to do
      const { rows: health } = await ctx.sub.query<{ h: { table: string; problems: string[] }[] }>('SELECT syncguard.health() AS h');
      const problems = health[0]?.h.find((x) => x.table === T)?.problems ?? [];
      expect(problems.join('\n')).toMatch(/now receives replicated changes on this node, and its triggers are statement-level/);
    } finally {
      await installSchema(ctx.sub, 'subscriber');
    }
  });
});
