// What a bulk statement's cost on the publisher is made of (issue 12): a bulk insert and a bulk
// update of BENCH_FLOOR_ROWS rows (default 500,000) of the benchmark's 10-column table, on a table
// of its own, with: no trigger; an empty statement trigger; an empty statement trigger that keeps
// transition tables (PostgreSQL then copies every changed row, old and new, into a tuplestore); and
// one that also writes the dirty marks from them, as syncguard's does. The gap between the first
// two is the trigger call, between the second and third the transition tables, and the last is
// syncguard's own work. Each figure is the median of 3.

import type { Pair } from '../dev/pair.js';
import type { Row } from './report.js';
import { fillSql, median, tableDdl, timed, updateSql } from './workloads.js';

const ROWS = Number(process.env.BENCH_FLOOR_ROWS ?? 500_000);
const REPEATS = 3;

const stmt = (event: 'INSERT' | 'UPDATE', transition: boolean, fn: string) =>
  `AFTER ${event} ON bf.t${transition ? (event === 'INSERT' ? ' REFERENCING NEW TABLE AS sg_new' : ' REFERENCING OLD TABLE AS sg_old NEW TABLE AS sg_new') : ''} FOR EACH STATEMENT EXECUTE FUNCTION bf.${fn}()`;

const VARIANTS: Array<[string, Array<string>]> = [
  ['no trigger', []],
  ['empty statement trigger', [stmt('INSERT', false, 'empty'), stmt('UPDATE', false, 'empty')]],
  ['empty statement trigger with transition tables', [stmt('INSERT', true, 'empty'), stmt('UPDATE', true, 'empty')]],
  [
    'statement trigger writing marks from transition tables (what syncguard does)',
    [stmt('INSERT', true, 'mark_new'), stmt('UPDATE', true, 'mark_both')],
  ],
];

export async function measureBulkFloor(pair: Pair, log: (s: string) => void): Promise<Row[]> {
  const db = pair.pub;
  await db.query(`CREATE SCHEMA bf; ${tableDdl('bf.t')};
    CREATE UNLOGGED TABLE bf.dirty (reg_id int, bucket bigint, xid xid8, marked_at timestamptz DEFAULT clock_timestamp(),
                                    PRIMARY KEY (reg_id, bucket, xid));
    CREATE FUNCTION bf.empty() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
    CREATE FUNCTION bf.mark_new() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      INSERT INTO bf.dirty (reg_id, bucket, xid) SELECT DISTINCT 1, id / 1000, pg_current_xact_id() FROM sg_new ON CONFLICT DO NOTHING;
      RETURN NULL; END $$;
    CREATE FUNCTION bf.mark_both() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      INSERT INTO bf.dirty (reg_id, bucket, xid) SELECT 1, b, pg_current_xact_id()
        FROM (SELECT id / 1000 FROM sg_old UNION SELECT id / 1000 FROM sg_new) u(b) ON CONFLICT DO NOTHING;
      RETURN NULL; END $$;`);
  const runs = new Map<string, { insert: number[]; update: number[] }>();
  try {
    for (let rep = 0; rep < REPEATS; rep++) {
      for (const [name, triggers] of VARIANTS) {
        for (const [i, t] of triggers.entries()) await db.query(`CREATE TRIGGER bf_${i} ${t}`);
        try {
          const insert = await timed(() => db.query(fillSql('bf.t', ROWS)));
          await db.query('VACUUM ANALYZE bf.t');
          const update = await timed(() => db.query(updateSql('bf.t')));
          const r = runs.get(name) ?? { insert: [], update: [] };
          r.insert.push(insert);
          r.update.push(update);
          runs.set(name, r);
          log(`bulk floor: ${name}, run ${rep + 1}: insert ${insert.toFixed(2)} s, update ${update.toFixed(2)} s`);
        } finally {
          for (const [i] of triggers.entries()) await db.query(`DROP TRIGGER bf_${i} ON bf.t`);
          await db.query('TRUNCATE bf.t, bf.dirty');
        }
      }
    }
  } finally {
    await db.query('DROP SCHEMA bf CASCADE');
  }
  const base = runs.get('no trigger') ?? { insert: [], update: [] };
  return VARIANTS.slice(1).flatMap(([name]) =>
    (['insert', 'update'] as const).map((what) => ({
      measure: `publisher bulk ${what} of ${ROWS} rows: ${name} (median of ${REPEATS})`,
      baseline: 'no trigger',
      baselineValue: median(base[what]),
      value: median(runs.get(name)?.[what] ?? []),
      unit: 's',
      kind: 'info' as const,
    })),
  );
}
