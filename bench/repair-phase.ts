// Inspect and repair cost (issue 9): a 5,000-row bucket with 50 differences (20 changed, 15
// missing and 15 extra rows on the subscriber). Reports the time to inspect, to plan, to repair,
// the time the repair held writers back on the publisher, and the replication delay it caused
// (the subscriber trigger's time applying the request inside the apply transaction).

import type { Pair } from '../dev/pair.js';
import { parseTableName } from '../functions/core/identifiers.js';
import type { Client } from '../functions/db/connect.js';
import { inspectBucket } from '../functions/flows/inspect.js';
import { applyPlan, planFromInspection } from '../functions/flows/repair.js';
import { register, settle } from '../test/support/syncguard.js';
import type { Row } from './report.js';

const T = 'public.repair_t';

export async function measureRepair(pair: Pair, pub: Client, sub: Client, log: (s: string) => void): Promise<Row[]> {
  log('repair: a 5,000-row bucket with 50 differences');
  await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, v text, n numeric, at timestamptz)`);
  await pair.pub.query(`ALTER PUBLICATION ${pair.name} ADD TABLE ${T}`);
  await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} REFRESH PUBLICATION`);
  await pair.waitForSync(600_000);
  // even keys only, 10,000 keys per bucket: 5,000 rows in bucket 0, and odd keys free for extra rows
  await pair.pub.query(`INSERT INTO ${T} SELECT i, md5(i::text), i * 0.5, now() FROM generate_series(0, 99998, 2) i`);
  await pair.catchUp(600_000);
  await register(pub, sub, T, { bucketSize: 10_000 });
  await settle(pub);
  await settle(sub);
  await pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id BETWEEN 1000 AND 1038;
                        DELETE FROM ${T} WHERE id BETWEEN 2000 AND 2028;
                        INSERT INTO ${T} SELECT i, 'extra', 0, now() FROM generate_series(3001, 3029, 2) i`);
  await settle(sub);
  // a writer on the same table (other rows) measures what inspection and repair make it wait
  const writer = async (ms: number) => {
    const w = await pair.ownerClient('publisher');
    const lat: number[] = [];
    const until = Date.now() + ms;
    for (let i = 0; Date.now() < until; i++) {
      const t0 = performance.now();
      await w.query(`UPDATE ${T} SET n = n + 1 WHERE id = ${20_000 + 2 * (i % 5000)}`);
      lat.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 5));
    }
    await w.close();
    return lat;
  };
  const alone = await writer(3000);
  const during = writer(3000);
  const started = Date.now();
  const ins = await inspectBucket(pub, sub, parseTableName(T), '0');
  const plan = planFromInspection(ins, { pair: 'bench' });
  const r = await applyPlan(pub, sub, { id: 'bench', ...plan });
  log(`repair: inspect and repair took ${Date.now() - started} ms while a writer ran`);
  const withRepair = await during;
  log(
    `repair: inspected ${ins.rowsChecked.publisher}/${ins.rowsChecked.subscriber} rows, ${ins.diffs.length} diffs in ${ins.durationMs} ms; ` +
      `repair ${JSON.stringify(r.counts)}, bucket ${r.bucketAfter}, ${r.durationMs} ms, held writers ${r.holdMs} ms, apply ${r.applyMs} ms`,
  );
  if (ins.diffs.length !== 50 || r.bucketAfter !== 'equal')
    throw new Error(`repair bench: expected 50 diffs repaired, got ${ins.diffs.length}, ${r.bucketAfter}`);
  return [
    {
      measure: 'inspect a 5,000-row bucket, 50 differences: time',
      baseline: 'target 2 s',
      baselineValue: 2,
      value: ins.durationMs / 1000,
      unit: 's',
      kind: 'info',
    },
    {
      measure: 'repair 50 rows (request, apply, bucket re-probed): time',
      baseline: 'target 2 s',
      baselineValue: 2,
      value: r.durationMs / 1000,
      unit: 's',
      kind: 'info',
    },
    {
      measure: 'repair: publisher writers held back',
      baseline: 'target 50 ms',
      baselineValue: 50,
      value: r.holdMs,
      unit: 'ms',
      kind: 'max',
      target: 1,
    },
    {
      measure: 'repair: replication delay (subscriber apply of the request)',
      baseline: 'target 50 ms',
      baselineValue: 50,
      value: r.applyMs ?? 0,
      unit: 'ms',
      kind: 'info',
    },
    {
      measure: 'writer to the same table: slowest update, inspect and repair running',
      baseline: 'writer alone',
      baselineValue: Math.max(...alone),
      value: Math.max(...withRepair),
      unit: 'ms',
      kind: 'info',
    },
  ];
}
