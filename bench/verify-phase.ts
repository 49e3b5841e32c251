// Verify cost: time and bytes read for an in-sync catalogue of 20,000 buckets, and for the same
// with 1 % of the buckets diverged; and for a catalogue of 1,000,000 buckets (a billion rows at
// 1,000 per bucket), simulated in the catalogue tables of both nodes, in sync and with 100
// buckets diverged. Bytes are the result payloads the verifier received (rows as JSON), measured
// by wrapping the two connections' query().

import type pg from 'pg';
import type { Pair } from '../dev/pair.js';
import { TableRef } from '../functions/core/identifiers.js';
import type { Client } from '../functions/db/connect.js';
import { nodeStatus } from '../functions/db/status.js';
import { verifyPair } from '../functions/flows/verify.js';
import { register, settle } from '../test/support/syncguard.js';
import type { Row } from './report.js';
import { timed } from './workloads.js';

const BUCKETS = 20_000;
const BIG_BUCKETS = Number(process.env.BENCH_BIG_BUCKETS ?? 1_000_000);
const ROWS_PER_BUCKET = 50;

function counting(c: Client): { client: Client; bytes: () => number; reset: () => void } {
  let total = 0;
  const original = c.query.bind(c) as (...args: unknown[]) => Promise<pg.QueryResult>;
  const proxy = new Proxy(c, {
    get(target, prop, receiver) {
      if (prop !== 'query') return Reflect.get(target, prop, receiver);
      return async (...args: unknown[]) => {
        const r = await original(...args);
        total += Buffer.byteLength(JSON.stringify(r.rows ?? []));
        return r;
      };
    },
  });
  return {
    client: proxy,
    bytes: () => total,
    reset: () => {
      total = 0;
    },
  };
}

export async function measureVerify(pair: Pair, pub: Client, sub: Client, log: (s: string) => void): Promise<Row[]> {
  const rows = BUCKETS * ROWS_PER_BUCKET;
  log(`verify: ${rows} rows in ${BUCKETS} buckets`);
  await pair.both('CREATE TABLE public.verify_t (id int PRIMARY KEY, v text)');
  await pair.pub.query(`ALTER PUBLICATION ${pair.name} ADD TABLE public.verify_t`);
  await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} REFRESH PUBLICATION`);
  await pair.waitForSync(600_000);
  await register(pub, sub, 'public.verify_t', { bucketSize: ROWS_PER_BUCKET });
  await pair.pub.query(`INSERT INTO public.verify_t SELECT i, md5(i::text) FROM generate_series(0, ${rows - 1}) i`);
  await pair.catchUp(600_000);
  await settle(pub);
  await settle(sub);

  const p = counting(pub);
  const s = counting(sub);
  const run = async () => {
    p.reset();
    s.reset();
    let status = '';
    const secs = await timed(async () => {
      status = (await verifyPair(p.client, s.client, { table: TableRef.of('public', 'verify_t') })).status;
    });
    return { secs, bytes: p.bytes() + s.bytes(), status };
  };
  // what the verifier's own drains still find to do (other phases may have left work on the node)
  for (const [side, c] of [
    ['publisher', pub],
    ['subscriber', sub],
  ] as const) {
    const st = await nodeStatus(c);
    log(
      `verify: before the run the ${side} has ${st.remainingDirty} dirty buckets, sweep ${st.tables.map((t) => `${t.table} ${t.sweepProgress}`).join(', ')}`,
    );
  }
  const clean = await run();
  log(`verify in sync: ${clean.status}, ${clean.secs.toFixed(2)} s, ${clean.bytes} bytes`);
  // 1 %: one row changed in every 100th bucket, on the subscriber
  await pair.sub.query(`UPDATE public.verify_t SET v = 'drift' WHERE id % ${ROWS_PER_BUCKET * 100} = 7`);
  await settle(sub);
  const drift = await run();
  log(`verify 1 % diverged: ${drift.status}, ${drift.secs.toFixed(2)} s, ${drift.bytes} bytes`);
  // undone, so that later phases verify a pair in sync
  await pair.sub.query(`UPDATE public.verify_t SET v = md5(id::text) WHERE id % ${ROWS_PER_BUCKET * 100} = 7`);
  await settle(sub);
  const mb = 1024 * 1024;
  const big = await measureBigCatalogue(pair, p, s, log);
  return [
    ...big,
    {
      measure: `verify, ${BUCKETS} buckets in sync: time`,
      baseline: 'target 2 s',
      baselineValue: 2,
      value: clean.secs,
      unit: 's',
      kind: 'max',
      target: 1,
    },
    {
      measure: `verify, ${BUCKETS} buckets in sync: bytes read`,
      baseline: 'target 1 MB',
      baselineValue: mb,
      value: clean.bytes,
      unit: 'B',
      kind: 'max',
      target: 1,
    },
    {
      measure: `verify, 1 % of ${BUCKETS} buckets diverged: time`,
      baseline: 'target 2 s',
      baselineValue: 2,
      value: drift.secs,
      unit: 's',
      kind: 'info',
    },
    {
      measure: `verify, 1 % of ${BUCKETS} buckets diverged: bytes read`,
      baseline: 'target 1 MB',
      baselineValue: mb,
      value: drift.bytes,
      unit: 'B',
      kind: 'info',
    },
  ];
}

/**
 * A registered table whose catalogue holds BIG_BUCKETS buckets of 1,000 rows on both nodes,
 * written straight into syncguard.bucket (the rows themselves would not fit here): verify in
 * sync, then with 100 buckets changed on the subscriber (without probes, which would read the
 * table itself; the fallback's rounds read only catalogues).
 */
async function measureBigCatalogue(
  pair: Pair,
  p: ReturnType<typeof counting>,
  s: ReturnType<typeof counting>,
  log: (s: string) => void,
): Promise<Row[]> {
  const T = 'public.verify_big';
  log(`verify: a catalogue of ${BIG_BUCKETS} buckets`);
  await pair.both(`CREATE TABLE ${T} (id bigint PRIMARY KEY, v text)`);
  await pair.pub.query(`ALTER PUBLICATION ${pair.name} ADD TABLE ${T}`);
  await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} REFRESH PUBLICATION`);
  await pair.waitForSync(600_000);
  await register(p.client, s.client, T, { bucketSize: 1000 });
  for (const c of [p.client, s.client]) {
    await settle(c);
    await c.query(
      `INSERT INTO syncguard.bucket (reg_id, bucket, row_count, hash_sum, computed_at, generation)
       SELECT g.reg_id, b, 1000, (b * 7919 % 1000003) * 1000003, now(), 1
         FROM syncguard.registrations g, generate_series(0, $1::bigint - 1) b WHERE g.table_name = 'verify_big'`,
      [BIG_BUCKETS],
    );
    await c.query('ANALYZE syncguard.bucket');
  }
  const run = async () => {
    p.reset();
    s.reset();
    let status = '';
    const secs = await timed(async () => {
      status = (await verifyPair(p.client, s.client, { table: TableRef.of('public', 'verify_big'), noProbes: true })).status;
    });
    return { secs, bytes: p.bytes() + s.bytes(), status };
  };
  const clean = await run();
  log(`verify ${BIG_BUCKETS} buckets in sync: ${clean.status}, ${clean.secs.toFixed(2)} s, ${clean.bytes} bytes`);
  await s.client.query(
    `UPDATE syncguard.bucket b SET hash_sum = hash_sum + 1 FROM syncguard.registrations g
      WHERE g.table_name = 'verify_big' AND b.reg_id = g.reg_id AND b.bucket % ($1::bigint / 100) = 17`,
    [BIG_BUCKETS],
  );
  const drift = await run();
  log(`verify ${BIG_BUCKETS} buckets, 100 diverged: ${drift.status}, ${drift.secs.toFixed(2)} s, ${drift.bytes} bytes`);
  if (clean.status !== 'in_sync' || drift.status !== 'diverged') throw new Error(`big catalogue: ${clean.status}, ${drift.status}`);
  // gone again, so that later phases do not drain or verify a catalogue without rows
  for (const c of [p.client, s.client]) await c.query('SELECT syncguard.unregister_table($1, $2)', ['public', 'verify_big']);
  const mb = 1024 * 1024;
  return [
    {
      measure: `verify, ${BIG_BUCKETS} buckets in sync: time`,
      baseline: 'target 10 s',
      baselineValue: 10,
      value: clean.secs,
      unit: 's',
      kind: 'max',
      target: 1,
    },
    {
      measure: `verify, ${BIG_BUCKETS} buckets in sync: bytes read`,
      baseline: 'target 10 MB',
      baselineValue: 10 * mb,
      value: clean.bytes,
      unit: 'B',
      kind: 'max',
      target: 1,
    },
    {
      measure: `verify, ${BIG_BUCKETS} buckets, 100 diverged: time`,
      baseline: 'target 10 s',
      baselineValue: 10,
      value: drift.secs,
      unit: 's',
      kind: 'max',
      target: 1,
    },
    {
      measure: `verify, ${BIG_BUCKETS} buckets, 100 diverged: bytes more than in sync`,
      baseline: 'target 1 MB',
      baselineValue: mb,
      value: drift.bytes - clean.bytes,
      unit: 'B',
      kind: 'max',
      target: 1,
    },
  ];
}
