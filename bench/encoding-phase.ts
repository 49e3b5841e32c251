// What rendering each type costs (issue 12, towards hash_version 2): for one column of each type,
// 200,000 values, the time to read the column (the baseline), to render it the way hash_version 1
// does (the type's output function inside a record literal), and to produce its binary send()
// output instead, which depends on no session setting. Best of 3 runs each, one backend.

import type { Pair } from '../dev/pair.js';
import type { Row } from './report.js';
import { timed } from './workloads.js';

const ROWS = 200_000;

/** Column type, and an expression of i (1..ROWS) giving varied values of it. */
const TYPES: Array<[string, string]> = [
  ['integer', 'i'],
  ['bigint', 'i::bigint * 7919'],
  ['numeric(12,4)', 'i / 7.0'],
  ['double precision', 'i * 0.1'],
  ['boolean', 'i % 2 = 0'],
  ['date', "date '2026-01-01' + i % 3000"],
  ['timestamptz', "timestamptz '2026-01-01 12:00+02' + i * interval '1 min'"],
  ['interval', "i * interval '1 h 2 s'"],
  ['uuid', 'md5(i::text)::uuid'],
  ['text', "'order note number ' || i"],
  ['bytea', "decode(md5(i::text), 'hex')"],
  ['jsonb', "jsonb_build_object('i', i, 'a', jsonb_build_array(1, 'x', null))"],
  ['text[]', "ARRAY['a', 'b c', i::text]"],
  ['inet', "('10.' || (i % 250) || '.' || (i % 200) || '.1')::inet"],
  ['money', '(i / 3.0)::numeric::money'],
];

export async function measureEncoding(pair: Pair, log: (s: string) => void): Promise<Row[]> {
  const db = pair.pub;
  const col = (i: number) => `c${i}`;
  await db.query(
    `CREATE TABLE enc_t AS SELECT ${TYPES.map(([ty, ex], i) => `(${ex})::${ty} AS ${col(i)}`).join(', ')} FROM generate_series(1, ${ROWS}) i`,
  );
  await db.query('VACUUM ANALYZE enc_t');
  await db.query('SET max_parallel_workers_per_gather = 0');
  const best = async (sql: string) =>
    Math.min(await timed(() => db.query(sql)), await timed(() => db.query(sql)), await timed(() => db.query(sql)));
  const rows: Row[] = [];
  try {
    for (const [i, [ty]] of TYPES.entries()) {
      const { rows: s } = await db.query<{ send: string }>('SELECT t.typsend::text AS send FROM pg_type t WHERE t.oid = $1::regtype', [ty]);
      const send = s[0]?.send as string;
      const scan = await best(`SELECT count(*) FROM enc_t WHERE ${col(i)} IS NOT NULL`);
      const text = await best(`SELECT sum(length(ROW(${col(i)})::text)) FROM enc_t`);
      const binary = await best(`SELECT sum(length(${send}(${col(i)}))) FROM enc_t`);
      log(
        `encoding: ${ty}: read ${(scan * 1000).toFixed(0)} ms, text ${(text * 1000).toFixed(0)} ms, ${send} ${(binary * 1000).toFixed(0)} ms`,
      );
      const perValue = (secs: number) => (secs * 1e9) / ROWS;
      rows.push({
        measure: `${ty}: rendered as hash_version 1 does (ns per value)`,
        baseline: 'reading the column',
        baselineValue: perValue(scan),
        value: perValue(text),
        unit: 'ns',
        kind: 'info',
      });
      rows.push({
        measure: `${ty}: binary ${send}() (ns per value)`,
        baseline: 'rendered as text',
        baselineValue: perValue(text),
        value: perValue(binary),
        unit: 'ns',
        kind: 'info',
      });
    }
  } finally {
    await db.query('DROP TABLE enc_t');
    await db.query('RESET max_parallel_workers_per_gather');
  }
  return rows;
}
