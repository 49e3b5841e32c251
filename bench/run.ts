// npm run bench: what dirty tracking and sweeping cost, as ratios against baselines measured in
// the same run on the same data (BENCH_ROWS rows, default 1,000,000, of a 10-column table).
// Two durable PostgreSQL 18 servers (fsync on) with real logical replication; everything started
// is stopped and removed at the end. Takes about 6 minutes; BENCH_LAG_SECONDS (default 120) sets
// the length of the drain-lag run.

import { type Cluster, startCluster } from '../dev/cluster.js';
import { createPair, type Pair } from '../dev/pair.js';
import { Deadline } from '../functions/db/deadline.js';
import { drain } from '../functions/db/drain.js';
import { installed, register } from '../test/support/syncguard.js';
import { measureApply } from './apply-phase.js';
import { measureBulk } from './bulk-phase.js';
import { measureBulkFloor } from './bulkfloor-phase.js';
import { measureEncoding } from './encoding-phase.js';
import { measureLag } from './lag-phase.js';
import { measurePartitions } from './partition-phase.js';
import { measureProbes } from './probe-phase.js';
import { measureRepair } from './repair-phase.js';
import { markdown, type Row } from './report.js';
import { measureSweep } from './sweep-phase.js';
import { measureVerify } from './verify-phase.js';
import { measureWorkers } from './workers-phase.js';
import { catchUpSeconds, fillSql, singleRowTps, tableDdl } from './workloads.js';
import { measureWritePath } from './writepath-phase.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const LAG_SECONDS = Number(process.env.BENCH_LAG_SECONDS ?? 120);
/** BENCH_PHASES=bulk, bulkfloor, sweep, apply, lag, verify, probe, repair, partition, workers, writepath or encoding (comma-separated) runs only those measurements; by default everything runs. */
const PHASES = new Set((process.env.BENCH_PHASES ?? 'all').split(','));
const TPS_SECONDS = 15;
/** Bulk phases are repeated and their median reported (single runs vary by about 15 %). */
const BULK_REPEATS = Number(process.env.BENCH_BULK_REPEATS ?? 3);
const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

async function report(rows: readonly Row[], ...clients: Array<{ close(): Promise<void> }>): Promise<void> {
  for (const c of clients) await c.close();
  process.stdout.write(
    `\n${markdown(rows)}\n\nrows: ${ROWS}; single-row tps over ${TPS_SECONDS} s x 2 per side; PostgreSQL 18, fsync on, 2 cores\n`,
  );
}

async function main(): Promise<void> {
  const durable = { fsync: null, full_page_writes: null, shared_buffers: '512MB', max_wal_size: '4GB' };
  const clusters: Cluster[] = [];
  let pair: Pair | undefined;
  try {
    clusters.push(await startCluster('bench-pub', 18, durable), await startCluster('bench-sub', 18, durable));
    pair = await createPair(clusters[0] as Cluster, clusters[1] as Cluster, 'bench');
    const p = pair;
    await p.both(`${tableDdl('plain')}; ${tableDdl('tracked')}`);
    await p.subscribe(['plain', 'tracked']);
    const { pub, sub } = await installed(p);
    await register(pub, sub, 'public.tracked', { bucketSize: 1000 });
    await p.sub.query(`ALTER SUBSCRIPTION ${p.name} DISABLE`);
    const rows: Row[] = [];

    if (!PHASES.has('all')) {
      await p.sub.query(`ALTER SUBSCRIPTION ${p.name} ENABLE`);
      if (PHASES.has('verify')) rows.push(...(await measureVerify(p, pub, sub, log)));
      if (PHASES.has('probe')) rows.push(...(await measureProbes(p, pub, sub, log)));
      if (PHASES.has('repair')) rows.push(...(await measureRepair(p, pub, sub, log)));
      if (PHASES.has('partition')) rows.push(...(await measurePartitions(p, pub, sub, log)));
      if (PHASES.has('writepath')) rows.push(...(await measureWritePath(p, log)));
      if (PHASES.has('encoding')) rows.push(...(await measureEncoding(p, log)));
      if (PHASES.has('apply')) rows.push(...(await measureApply(p, log)));
      if (PHASES.has('bulkfloor')) rows.push(...(await measureBulkFloor(p, log)));
      if (PHASES.has('bulk')) {
        await p.sub.query(`ALTER SUBSCRIPTION ${p.name} DISABLE`);
        rows.push(...(await measureBulk(p, pub, sub, ROWS, BULK_REPEATS, log)));
      }
      if (PHASES.has('workers') || PHASES.has('sweep') || PHASES.has('lag')) {
        if (!PHASES.has('bulk')) await p.pub.query(fillSql('tracked', ROWS));
        await drain(pub, { deadline: Deadline.after(600_000) });
        if (PHASES.has('sweep')) rows.push(...(await measureSweep(p, pub, sub, 'public.tracked', ROWS, log)));
        if (PHASES.has('workers')) rows.push(...(await measureWorkers(p, pub, 'tracked', log)));
        if (PHASES.has('lag')) rows.push(...(await measureLag(p, pub, sub, ROWS, LAG_SECONDS, log)));
      }
      return report(rows, pub, sub);
    }
    rows.push(...(await measureBulk(p, pub, sub, ROWS, BULK_REPEATS, log)));

    log('single-row updates (plain, tracked, tracked, plain)');
    const tps: Record<string, number[]> = { plain: [], tracked: [] };
    let tool = '';
    for (const t of ['plain', 'tracked', 'tracked', 'plain']) {
      const r = await singleRowTps(p, t, ROWS, TPS_SECONDS);
      tool = r.tool;
      tps[t]?.push(r.tps);
    }
    const avg = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    rows.push({
      measure: `publisher single-row updates, 4 clients (${tool})`,
      baseline: 'no trigger',
      baselineValue: avg(tps.plain ?? []),
      value: avg(tps.tracked ?? []),
      unit: 'tps',
      kind: 'min',
      target: 0.9,
    });
    await catchUpSeconds(p); // let the subscriber apply the tps run before the sweep measurements

    rows.push(...(await measureSweep(p, pub, sub, 'public.tracked', ROWS, log)));
    rows.push(...(await measureWorkers(p, pub, 'tracked', log)));

    await p.sub.query(`ALTER SUBSCRIPTION ${p.name} ENABLE`);
    rows.push(...(await measureVerify(p, pub, sub, log)));
    rows.push(...(await measureProbes(p, pub, sub, log)));
    rows.push(...(await measureRepair(p, pub, sub, log)));
    rows.push(...(await measurePartitions(p, pub, sub, log)));
    rows.push(...(await measureWritePath(p, log)));
    rows.push(...(await measureApply(p, log)));
    rows.push(...(await measureBulkFloor(p, log)));
    rows.push(...(await measureEncoding(p, log)));
    if (LAG_SECONDS > 0) rows.push(...(await measureLag(p, pub, sub, ROWS, LAG_SECONDS, log)));
    return report(rows, pub, sub);
  } finally {
    await pair?.dispose().catch(() => {});
    for (const c of clusters) await c.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
