// Lambda: drain one configured database within the invocation's remaining time.
// Event: { "database": "<name>" } or {} for the configured default.

import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { loadConfig, pickDatabase } from './commons/config.js';
import { connectionFor } from './commons/connections.js';
import { lambdaHandler } from './commons/handler.js';
import { logger, metrics } from './commons/observability.js';
import { DIMENSION, METRIC } from './contract.js';
import type { DrainSummary } from './core/drain.js';
import { DrainError, TimeLimitError } from './core/errors.js';
import type { Client } from './db/connect.js';
import { Deadline } from './db/deadline.js';
import { parseEvent } from './events.js';
import { drainWithWorkers } from './flows/drain.js';

export async function drainHandler(event: unknown, context: Context): Promise<DrainSummary & { database: string }> {
  const e = parseEvent('drain', event);
  const config = loadConfig();
  const database = pickDatabase(config, e.database);
  const deadline = Deadline.fromLambda(context, 0);
  const remaining = deadline.remainingMs();
  if (!(remaining > 0)) throw new TimeLimitError(`no time left to drain (remaining ${remaining} ms); give the function a longer timeout`);
  const secretId = config.databases[database]?.secretId as string;
  // one cached connection per worker (reserved concurrency 1 keeps it at that per database)
  const clients: Client[] = [];
  for (let i = 0; i < config.drainWorkers; i++) clients.push(await connectionFor(i === 0 ? database : `${database}#${i}`, secretId));
  const summary = await drainWithWorkers(clients, {
    deadline,
    resweepIntervalMs: config.resweepIntervalMs,
    ...(config.drainMarginMs !== undefined ? { marginMs: config.drainMarginMs } : {}),
  });

  metrics.addDimension(DIMENSION.Database, database);
  // unknown is not 0: without a status the metric is left out (and DrainStatusUnknown says so),
  // so a "dirty buckets" alarm on missing data never reads it as caught up
  if (summary.remainingDirty !== null) metrics.addMetric(METRIC.DirtyBuckets, MetricUnit.Count, summary.remainingDirty);
  metrics.addMetric(METRIC.DrainStatusUnknown, MetricUnit.Count, summary.remainingDirty === null ? 1 : 0);
  metrics.addMetric(METRIC.OldestDirtyAgeSeconds, MetricUnit.Seconds, (summary.oldestDirtyAgeMs ?? 0) / 1000);
  metrics.addMetric(METRIC.BucketsRecomputed, MetricUnit.Count, summary.bucketsRecomputed);
  metrics.addMetric(METRIC.RowsHashed, MetricUnit.Count, summary.rowsHashed);
  metrics.addMetric(METRIC.DrainStoppedOnTime, MetricUnit.Count, summary.stoppedBecause === 'time' ? 1 : 0);
  // tables skipped because a fault is recorded for them: not drained until they are registered again
  metrics.addMetric(METRIC.FaultyTables, MetricUnit.Count, summary.faultyTables.length);
  logger.info('drain finished', { database, workers: clients.length, ...summary });

  if (summary.stoppedBecause === 'error') throw new DrainError(`drain of ${database} stopped on an error: ${summary.error}`);
  return { database, ...summary };
}

export const handler = lambdaHandler(drainHandler);
