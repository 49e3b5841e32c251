// Where the subscriber's apply cost goes (issue 12): the catch-up of a bulk insert and of a bulk
// update of BENCH_APPLY_ROWS rows (default 300,000) on the baseline table, with the subscriber's
// table given in turn: no trigger; an empty AFTER ROW trigger and an empty BEFORE ROW trigger
// (what firing a PL/pgSQL row trigger costs, queued after the row or called before it); and
// syncguard's own row trigger body (the generated mark function of the registered table, so the
// same bucket rule, memo and dirty insert) attached AFTER, as syncguard does, and BEFORE. The
// subscription is disabled while the publisher writes, then enabled and timed until it has applied
// everything; the table is emptied between variants. Each figure is the median of 3.

import type { Pair } from '../dev/pair.js';
import type { Row } from './report.js';
import { catchUpSeconds, fillSql, median } from './workloads.js';

const ROWS = Number(process.env.BENCH_APPLY_ROWS ?? 300_000);
const REPEATS = 3;
const RUN_AS_OWNER = "syncguard's row trigger, AFTER, subscription with run_as_owner = true";

export async function measureApply(pair: Pair, log: (s: string) => void): Promise<Row[]> {
  const { rows: reg } = await pair.sub.query<{ fn: string; src: string }>(
    `SELECT p.oid::regproc::text AS fn, p.prosrc AS src FROM syncguard.registrations g
       JOIN pg_proc p ON p.oid = format('syncguard.mark_%s', g.reg_id)::regproc::oid WHERE g.table_name = 'tracked'`,
  );
  const body = reg[0]?.src;
  if (body === undefined) throw new Error('the tracked table is not registered on the subscriber');
  const before = body.replaceAll('RETURN NULL;', "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW;");
  await pair.sub.query(`CREATE SCHEMA ap;
    CREATE FUNCTION ap.empty_after() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
    CREATE FUNCTION ap.empty_before() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
    CREATE FUNCTION ap.mark_after() RETURNS trigger LANGUAGE plpgsql AS $body$${body}$body$;
    CREATE FUNCTION ap.mark_before() RETURNS trigger LANGUAGE plpgsql AS $body$${before}$body$;`);
  const variants: Array<[string, string | null]> = [
    ['no trigger', null],
    ['empty PL/pgSQL AFTER ROW trigger', 'AFTER INSERT OR UPDATE ON plain FOR EACH ROW EXECUTE FUNCTION ap.empty_after()'],
    ['empty PL/pgSQL BEFORE ROW trigger', 'BEFORE INSERT OR UPDATE ON plain FOR EACH ROW EXECUTE FUNCTION ap.empty_before()'],
    ["syncguard's row trigger, AFTER (as installed)", 'AFTER INSERT OR UPDATE ON plain FOR EACH ROW EXECUTE FUNCTION ap.mark_after()'],
    ["syncguard's row trigger body, BEFORE", 'BEFORE INSERT OR UPDATE ON plain FOR EACH ROW EXECUTE FUNCTION ap.mark_before()'],
    // PostgreSQL 16+ applies each change as the table's owner when the subscription's owner is
    // another role (run_as_owner = false, the default), and rolls back every setting changed during
    // the change: the trigger's transaction-local memo never survives a row. With run_as_owner the
    // memo works: this is what it saves.
    [RUN_AS_OWNER, 'AFTER INSERT OR UPDATE ON plain FOR EACH ROW EXECUTE FUNCTION ap.mark_after()'],
  ];
  const result = new Map<string, { insert: number[]; update: number[] }>();
  await pair.pub.query('TRUNCATE plain');
  await catchUpSeconds(pair);
  try {
    for (let rep = 0; rep < REPEATS; rep++) {
      for (const [name, trigger] of variants) {
        if (trigger !== null) await pair.sub.query(`CREATE TRIGGER ap_t ${trigger}; ALTER TABLE plain ENABLE ALWAYS TRIGGER ap_t`);
        if (name === RUN_AS_OWNER) await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} SET (run_as_owner = true)`);
        try {
          await pair.pub.query(fillSql('plain', ROWS));
          const insert = await catchUpSeconds(pair);
          await pair.pub.query('UPDATE plain SET amount = amount + 1, updated_at = now(), flags = flags + 1');
          const update = await catchUpSeconds(pair);
          const r = result.get(name) ?? { insert: [], update: [] };
          r.insert.push(insert);
          r.update.push(update);
          result.set(name, r);
          log(`apply: ${name}, run ${rep + 1}: insert catch-up ${insert.toFixed(2)} s, update catch-up ${update.toFixed(2)} s`);
        } finally {
          if (trigger !== null) await pair.sub.query('DROP TRIGGER ap_t ON plain');
          if (name === RUN_AS_OWNER) await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} SET (run_as_owner = false)`);
          await pair.pub.query('TRUNCATE plain');
          await catchUpSeconds(pair);
        }
      }
    }
  } finally {
    await pair.sub.query('DROP SCHEMA ap CASCADE');
    // catchUpSeconds() leaves the subscription disabled; the phases after this one need it running
    await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} ENABLE`);
  }
  const base = result.get('no trigger') ?? { insert: [], update: [] };
  const out: Row[] = [];
  for (const [name] of variants.slice(1)) {
    const r = result.get(name) ?? { insert: [], update: [] };
    for (const what of ['insert', 'update'] as const) {
      out.push({
        measure: `subscriber catch-up of a ${ROWS} row bulk ${what}: ${name} (median of ${REPEATS})`,
        baseline: 'no trigger',
        baselineValue: median(base[what]),
        value: median(r[what]),
        unit: 's',
        kind: 'info',
      });
    }
  }
  return out;
}
