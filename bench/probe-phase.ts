// Verify under continuous writes (issue 8): a writer at 200 transactions/s (one random row of a
// 100k-row table and one row of a 5-row table each), first alone, then with verify running back
// to back. Reports verify's time, what the probes add to the writer's latency (p50 and p99, against
// the writer alone in the same run), how long probes held writers back, and the apply delay per
// probe (the subscriber trigger's compute time, from syncguard.probe_result).

import type { Pair } from '../dev/pair.js';
import type { Client } from '../functions/db/connect.js';
import { Deadline } from '../functions/db/deadline.js';
import { verifyPair } from '../functions/flows/verify.js';
import { percentile, startWriter } from '../test/support/load.js';
import { register, settle } from '../test/support/syncguard.js';
import type { Row } from './report.js';

const BIG = 'public.load_big';
const HOT = 'public.load_hot';
const ROWS = 100_000;
const RATE = 200;
const SECONDS = Number(process.env.BENCH_PROBE_SECONDS ?? 30);

export async function measureProbes(pair: Pair, pub: Client, sub: Client, log: (s: string) => void): Promise<Row[]> {
  log(`probes: ${RATE} tx/s on a ${ROWS}-row table and a 5-row table, ${SECONDS} s alone, then ${SECONDS} s with verify back to back`);
  await pair.both(
    `CREATE TABLE ${BIG} (id int PRIMARY KEY, v bigint NOT NULL, note text); CREATE TABLE ${HOT} (id int PRIMARY KEY, n bigint NOT NULL)`,
  );
  await pair.pub.query(`ALTER PUBLICATION ${pair.name} ADD TABLE ${BIG}, ${HOT}`);
  await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} REFRESH PUBLICATION`);
  await pair.waitForSync(600_000);
  await pair.pub.query(
    `INSERT INTO ${BIG} SELECT i, 0, md5(i::text) FROM generate_series(1, ${ROWS}) i; INSERT INTO ${HOT} SELECT i, 0 FROM generate_series(1, 5) i`,
  );
  await pair.catchUp(600_000);
  await register(pub, sub, BIG, { bucketSize: 1000 });
  await register(pub, sub, HOT);
  await settle(pub);
  await settle(sub);

  const opts = { big: BIG, hot: HOT, maxKey: ROWS, hotRows: 5, perSecond: RATE };
  const alone = await startWriter(pair.publisherDsn, opts);
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const base = await alone.stop();

  const since = (await pair.sub.query<{ t: string }>('SELECT clock_timestamp()::text AS t')).rows[0]?.t;
  const loaded = await startWriter(pair.publisherDsn, opts);
  const until = Date.now() + SECONDS * 1000;
  const runs: { secs: number; status: string; holdMs: number; probes: number }[] = [];
  while (Date.now() < until) {
    const r = await verifyPair(pub, sub, { deadline: Deadline.after(30_000) });
    runs.push({ secs: r.durationMs / 1000, status: r.status, holdMs: r.probes.maxHoldMs, probes: r.probes.probes });
  }
  const withVerify = await loaded.stop();
  const { rows: apply } = await pair.sub.query<{ p50: number | null; max: number | null; n: string }>(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY compute_ms)::float8 AS p50, max(compute_ms)::float8 AS max, count(*) AS n
       FROM syncguard.probe_result WHERE applied_at > $1::timestamptz AND answer <> '{}'::jsonb`,
    [since],
  );
  const secs = runs.map((r) => r.secs);
  const inSync = runs.filter((r) => r.status === 'in_sync').length;
  const p = (xs: readonly number[], q: number) => percentile(xs, q);
  log(
    `probes: ${runs.length} verify runs, ${inSync} in sync, ${runs.reduce((a, r) => a + r.probes, 0)} probes; ` +
      `writer ${(base.transactions / base.seconds).toFixed(0)} / ${(withVerify.transactions / withVerify.seconds).toFixed(0)} tx/s; ` +
      `p50 ${p(base.latenciesMs, 50).toFixed(2)} -> ${p(withVerify.latenciesMs, 50).toFixed(2)} ms, ` +
      `p99 ${p(base.latenciesMs, 99).toFixed(2)} -> ${p(withVerify.latenciesMs, 99).toFixed(2)} ms; apply p50 ${apply[0]?.p50} ms, max ${apply[0]?.max} ms over ${apply[0]?.n} probes`,
  );
  return [
    {
      measure: `verify under ${RATE} tx/s: time (median of ${runs.length} runs)`,
      baseline: 'target 5 s',
      baselineValue: 5,
      value: p(secs, 50),
      unit: 's',
      kind: 'max',
      target: 1,
    },
    {
      measure: `verify under ${RATE} tx/s: time (slowest run)`,
      baseline: 'target 5 s',
      baselineValue: 5,
      value: Math.max(...secs),
      unit: 's',
      kind: 'info',
    },
    {
      measure: `verify under ${RATE} tx/s: runs in sync`,
      baseline: 'runs',
      baselineValue: runs.length,
      value: inSync,
      unit: 'runs',
      kind: 'min',
      target: 0.9,
    },
    {
      measure: 'writer p50 latency, verify running',
      baseline: 'writer alone',
      baselineValue: p(base.latenciesMs, 50),
      value: p(withVerify.latenciesMs, 50),
      unit: 'ms',
      kind: 'info',
    },
    {
      measure: 'writer p99 latency, verify running',
      baseline: 'writer alone',
      baselineValue: p(base.latenciesMs, 99),
      value: p(withVerify.latenciesMs, 99),
      unit: 'ms',
      kind: 'info',
    },
    {
      measure: 'writer p99 latency added by probes',
      baseline: 'target 25 ms',
      baselineValue: 25,
      value: Math.max(0, p(withVerify.latenciesMs, 99) - p(base.latenciesMs, 99)),
      unit: 'ms',
      kind: 'max',
      target: 1,
    },
    {
      measure: 'longest a probe held writers back',
      baseline: 'target 25 ms',
      baselineValue: 25,
      value: Math.max(...runs.map((r) => r.holdMs)),
      unit: 'ms',
      kind: 'info',
    },
    {
      measure: 'apply delay per probe (subscriber compute), median',
      baseline: 'target 25 ms',
      baselineValue: 25,
      value: apply[0]?.p50 ?? 0,
      unit: 'ms',
      kind: 'info',
    },
    {
      measure: 'apply delay per probe (subscriber compute), max',
      baseline: 'target 25 ms',
      baselineValue: 25,
      value: apply[0]?.max ?? 0,
      unit: 'ms',
      kind: 'info',
    },
  ];
}
