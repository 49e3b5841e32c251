// Sweep throughput on one backend (no parallel workers), for each hash version, against the
// baselines of the same run: count(*), a scan that reads every column, and the earlier
// pg-sync-guard's per-bucket query. The table is re-registered with each version in turn (the
// explicit upgrade step), swept in full by drain, and left registered with the default version.

import type { Pair } from '../dev/pair.js';
import { DEFAULT_HASH_VERSION, HASH_VERSIONS, type HashVersion } from '../functions/core/hashing.js';
import { parseTableName } from '../functions/core/identifiers.js';
import type { Client } from '../functions/db/connect.js';
import { Deadline } from '../functions/db/deadline.js';
import { drain } from '../functions/db/drain.js';
import { registerOnPair } from '../functions/flows/pair-setup.js';
import type { Row } from './report.js';
import { timed } from './workloads.js';

const COLUMNS = 't.id, t.customer_id, t.status, t.amount, t.currency, t.created_at, t.updated_at, t.note, t.flags, t.payload';

export async function measureSweep(
  pair: Pair,
  pub: Client,
  sub: Client,
  table: string,
  rows: number,
  log: (s: string) => void,
): Promise<Row[]> {
  log('sweep throughput (one backend, no parallel workers)');
  await pair.pub.query('SET max_parallel_workers_per_gather = 0');
  await pub.query('SET max_parallel_workers_per_gather = 0');
  const best = async (sql: string) => {
    const runs = [await timed(() => pair.pub.query(sql)), await timed(() => pair.pub.query(sql)), await timed(() => pair.pub.query(sql))];
    return Math.min(...runs);
  };
  const countS = await best(`SELECT count(*) FROM ${table}`);
  const scanS = await best(`SELECT count(*) FROM ${table} t WHERE ROW(${COLUMNS}) IS NOT NULL`);
  const seedS = await best(`SELECT count(*), sum(length(m)) FROM (SELECT b, md5(string_agg(h, '' ORDER BY h)) m
      FROM (SELECT id / 1000 AS b, md5(row_to_json(t)::text) AS h FROM ${table} t) s GROUP BY b) x`);

  const sweepOnce = async (version: HashVersion): Promise<number> => {
    await registerOnPair(pub, sub, { table: parseTableName(table), hashVersion: version, refresh: true });
    await drain(sub, { deadline: Deadline.after(600_000) });
    return timed(async () => {
      const s = await drain(pub, { deadline: Deadline.after(600_000) });
      if (s.stoppedBecause !== 'empty') throw new Error(`sweep did not finish: ${JSON.stringify(s)}`);
    });
  };
  const sweepS = new Map<HashVersion, number>();
  // each version at least twice, alternating, the best run of each; the registration ends on the default
  for (const v of [...HASH_VERSIONS, DEFAULT_HASH_VERSION, 1 as HashVersion, DEFAULT_HASH_VERSION]) {
    const s = await sweepOnce(v);
    log(`sweep: hash version ${v}: ${rows} rows in ${s.toFixed(2)} s (${Math.round(rows / s)} rows/s)`);
    sweepS.set(v, Math.min(sweepS.get(v) ?? Number.POSITIVE_INFINITY, s));
  }
  const rate = (s: number) => rows / s;
  const out: Row[] = [];
  for (const v of HASH_VERSIONS) {
    const value = rate(sweepS.get(v) ?? Number.NaN);
    const measure = `sweep rows/s, hash version ${v} (drain, full re-sweep)`;
    const current = v === DEFAULT_HASH_VERSION;
    out.push(
      {
        measure,
        baseline: 'earlier pg-sync-guard query',
        baselineValue: rate(seedS),
        value,
        unit: 'rows/s',
        kind: current ? 'min' : 'info',
        ...(current ? { target: 5 } : {}),
      },
      {
        measure,
        baseline: 'scan reading every column',
        baselineValue: rate(scanS),
        value,
        unit: 'rows/s',
        kind: current ? 'min' : 'info',
        ...(current ? { target: 0.3 } : {}),
      },
      { measure, baseline: 'count(*)', baselineValue: rate(countS), value, unit: 'rows/s', kind: 'info' },
    );
  }
  out.push({
    measure: `sweep rows/s, hash version ${DEFAULT_HASH_VERSION}`,
    baseline: 'hash version 1, same run',
    baselineValue: rate(sweepS.get(1) ?? Number.NaN),
    value: rate(sweepS.get(DEFAULT_HASH_VERSION) ?? Number.NaN),
    unit: 'rows/s',
    kind: 'info',
  });
  return out;
}
