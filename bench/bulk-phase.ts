// Bulk statements on the publisher, with and without syncguard's triggers, and the subscriber's
// catch-up on them (its subscription disabled while the publisher writes, then enabled and timed
// until it has applied everything). Each is repeated and the median reported: single runs vary by
// about 15 %. Between repetitions both tables are emptied (through replication) and both nodes
// drained, so every repetition starts from the same state.

import type { Pair } from '../dev/pair.js';
import type { Client } from '../functions/db/connect.js';
import { Deadline } from '../functions/db/deadline.js';
import { drain } from '../functions/db/drain.js';
import type { Row } from './report.js';
import { catchUpSeconds, fillSql, median, timed, updateSql } from './workloads.js';

type Step = { readonly what: string; readonly sql: (t: string) => string };

export async function measureBulk(
  pair: Pair,
  pub: Client,
  sub: Client,
  rows: number,
  repeats: number,
  log: (s: string) => void,
): Promise<Row[]> {
  const steps: Step[] = [
    { what: 'insert', sql: (t) => fillSql(t, rows) },
    { what: 'update', sql: updateSql },
  ];
  const runs = new Map<string, number[]>();
  const add = (key: string, v: number) => runs.set(key, [...(runs.get(key) ?? []), v]);
  for (let rep = 0; rep < repeats; rep++) {
    if (rep > 0) {
      await pair.pub.query('TRUNCATE plain, tracked');
      await catchUpSeconds(pair);
      await drain(pub, { deadline: Deadline.after(600_000) });
      await drain(sub, { deadline: Deadline.after(600_000) });
    }
    for (const step of steps) {
      for (const t of ['plain', 'tracked']) {
        const s = await timed(() => pair.pub.query(step.sql(t)));
        await pair.pub.query(`VACUUM ANALYZE ${t}`);
        const c = await catchUpSeconds(pair);
        add(`${step.what}:${t}:pub`, s);
        add(`${step.what}:${t}:sub`, c);
        log(
          `bulk ${step.what} of ${rows} rows, ${t}, run ${rep + 1}/${repeats}: publisher ${s.toFixed(2)} s, subscriber catch-up ${c.toFixed(2)} s`,
        );
      }
    }
    await drain(pub, { deadline: Deadline.after(600_000) });
    await drain(sub, { deadline: Deadline.after(600_000) });
  }
  const m = (key: string) => median(runs.get(key) ?? []);
  const spread = (key: string) => {
    const xs = runs.get(key) ?? [];
    return `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)} s`;
  };
  const out: Row[] = [];
  for (const { what } of steps) {
    out.push({
      measure: `publisher bulk ${what} (median of ${repeats}; tracked ${spread(`${what}:tracked:pub`)})`,
      baseline: 'no trigger',
      baselineValue: m(`${what}:plain:pub`),
      value: m(`${what}:tracked:pub`),
      unit: 's',
      kind: 'max',
      target: 1.2,
    });
    out.push({
      measure: `subscriber catch-up, bulk ${what} (median of ${repeats}; tracked ${spread(`${what}:tracked:sub`)})`,
      baseline: 'no trigger',
      baselineValue: m(`${what}:plain:sub`),
      value: m(`${what}:tracked:sub`),
      unit: 's',
      kind: 'max',
      target: 1.3,
    });
  }
  return out;
}
