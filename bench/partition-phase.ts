// What tracking a partitioned table costs (issue 11): the 10-column table partitioned 12 ways,
// no trigger against a registered root (row triggers cloned to every partition, because a
// statement trigger on the root misses statements that name a partition), and a registered plain
// table (statement triggers) for reference. Publisher bulk insert and the subscriber's catch-up
// (median of 3), and single-row updates by 4 clients.

import type { Pair } from '../dev/pair.js';
import type { Client } from '../functions/db/connect.js';
import { register, settle } from '../test/support/syncguard.js';
import type { Row } from './report.js';
import { catchUpSeconds, fillSql, median, singleRowTps, tableDdl, timed } from './workloads.js';

const ROWS = Number(process.env.BENCH_PARTITION_ROWS ?? 300_000);
const PARTS = 12;

const partitionedDdl = (name: string) =>
  `${tableDdl(name)} PARTITION BY RANGE (id);
   ${Array.from({ length: PARTS }, (_, i) => {
     const lo = i === 0 ? 'MINVALUE' : String(Math.floor((ROWS * i) / PARTS) + 1);
     const hi = i === PARTS - 1 ? 'MAXVALUE' : String(Math.floor((ROWS * (i + 1)) / PARTS) + 1);
     return `CREATE TABLE ${name}_p${i} PARTITION OF ${name} FOR VALUES FROM (${lo}) TO (${hi});`;
   }).join('\n')}`;

const add = (r: Record<string, number[]>, k: string, v: number) => {
  r[k] = [...(r[k] ?? []), v];
};

export async function measurePartitions(pair: Pair, pub: Client, sub: Client, log: (s: string) => void): Promise<Row[]> {
  const tables = ['part_plain', 'part_tracked', 'flat_tracked'];
  await pair.both(`${partitionedDdl('part_plain')}; ${partitionedDdl('part_tracked')}; ${tableDdl('flat_tracked')}`);
  await pair.pub.query(`ALTER PUBLICATION ${pair.name} ADD TABLE ${tables.join(', ')}`);
  await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} REFRESH PUBLICATION`);
  await pair.waitForSync(600_000);
  await register(pub, sub, 'public.part_tracked', { bucketSize: 1000 });
  await register(pub, sub, 'public.flat_tracked', { bucketSize: 1000 });
  await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} DISABLE`);

  const insert: Record<string, number[]> = {};
  const catchUp: Record<string, number[]> = {};
  for (let round = 0; round < 3; round++) {
    for (const t of tables) {
      await pair.pub.query(`TRUNCATE ${t}`);
      await catchUpSeconds(pair);
      log(`partitions: bulk insert of ${ROWS} rows into ${t} (round ${round + 1} of 3)`);
      add(insert, t, await timed(() => pair.pub.query(fillSql(t, ROWS))));
      add(catchUp, t, await catchUpSeconds(pair));
    }
  }
  await settle(pub);
  await settle(sub);

  log('partitions: single-row updates (plain, tracked, tracked, plain)');
  await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} ENABLE`);
  const tps: Record<string, number[]> = {};
  let tool = '';
  for (const t of ['part_plain', 'part_tracked', 'part_tracked', 'part_plain']) {
    const r = await singleRowTps(pair, t, ROWS, 10);
    tool = r.tool;
    add(tps, t, r.tps);
  }
  await pair.catchUp(600_000);
  const avg = (a: number[] = []) => a.reduce((x, y) => x + y, 0) / a.length;
  const m = (r: Record<string, number[]>, t: string) => median(r[t] ?? []);
  return [
    {
      measure: `partitioned (${PARTS} partitions), publisher bulk insert (median of 3)`,
      baseline: 'no trigger',
      baselineValue: m(insert, 'part_plain'),
      value: m(insert, 'part_tracked'),
      unit: 's',
      kind: 'info',
    },
    {
      measure: 'unpartitioned, publisher bulk insert (median of 3), for reference',
      baseline: 'partitioned, no trigger',
      baselineValue: m(insert, 'part_plain'),
      value: m(insert, 'flat_tracked'),
      unit: 's',
      kind: 'info',
    },
    {
      measure: `partitioned (${PARTS} partitions), subscriber catch-up, bulk insert (median of 3)`,
      baseline: 'no trigger',
      baselineValue: m(catchUp, 'part_plain'),
      value: m(catchUp, 'part_tracked'),
      unit: 's',
      kind: 'info',
    },
    {
      measure: `partitioned (${PARTS} partitions), publisher single-row updates, 4 clients (${tool})`,
      baseline: 'no trigger',
      baselineValue: avg(tps.part_plain),
      value: avg(tps.part_tracked),
      unit: 'tps',
      kind: 'info',
    },
  ];
}
