// Drain lag: a steady writer changes 1,000 rows a second of the benchmark table for `seconds`,
// while each node runs a 20 s drain every 20 s, as the scheduled drain Lambda would; a sampler
// reads each node's oldest dirty mark every second. Both nodes start from an empty backlog.

import type { Pair } from '../dev/pair.js';
import type { Client } from '../functions/db/connect.js';
import { Deadline } from '../functions/db/deadline.js';
import { drain } from '../functions/db/drain.js';
import type { Row } from './report.js';
import { sleep, steadyWriter } from './workloads.js';

export async function measureLag(
  pair: Pair,
  pub: Client,
  sub: Client,
  rows: number,
  seconds: number,
  log: (s: string) => void,
): Promise<Row[]> {
  log(`drain lag: 1,000 row changes/s for ${seconds} s, a 20 s drain every 20 s on each side`);
  // earlier phases leave marks (the partition phase's pgbench run): they are not this lag
  await drain(pub, { deadline: Deadline.after(600_000) });
  await drain(sub, { deadline: Deadline.after(600_000) });
  const until = Date.now() + seconds * 1000;
  const ages: Record<'pub' | 'sub', number[]> = { pub: [], sub: [] };
  const drainer = async (c: Client) => {
    while (Date.now() < until) {
      const tick = Date.now();
      await drain(c, { deadline: Deadline.at(Math.min(until, tick + 20_000)), resweepIntervalMs: null });
      const wait = tick + 20_000 - Date.now();
      if (wait > 0 && Date.now() + wait < until) await sleep(wait);
      else if (wait > 0) break;
    }
  };
  const sampler = async () => {
    const probe =
      'SELECT coalesce(floor(extract(epoch FROM clock_timestamp() - min(marked_at)) * 1000), 0)::bigint AS ms FROM syncguard.dirty';
    while (Date.now() < until) {
      ages.pub.push(Number((await pair.pub.query(probe)).rows[0]?.ms));
      ages.sub.push(Number((await pair.sub.query(probe)).rows[0]?.ms));
      await sleep(1000);
    }
  };
  const [changed] = await Promise.all([
    steadyWriter(pair.publisherDsn, 'tracked', rows, 1000, until),
    drainer(pub),
    drainer(sub),
    sampler(),
  ]);
  log(`drain lag: ${changed} rows changed`);
  return (['pub', 'sub'] as const).map((side) => ({
    measure: `oldest dirty age, max over ${seconds} s (${side === 'pub' ? 'publisher' : 'subscriber'})`,
    baseline: 'target 60 s',
    baselineValue: 60,
    value: Math.max(...ages[side]) / 1000,
    unit: 's',
    kind: 'max' as const,
    target: 1,
  }));
}
