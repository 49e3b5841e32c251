// Lambda: verify one configured pair and record the run in the control plane.
// Event: { "pair": "<name>", "table"?: "schema.table" }. Returns the verdict summary and the ids
// of the divergences it opened or refreshed, so an investigation workflow can start from them.

import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { loadVerifyConfig } from './commons/config.js';
import { connectionFor } from './commons/connections.js';
import { lambdaHandler } from './commons/handler.js';
import { logger, metrics } from './commons/observability.js';
import { DIMENSION, METRIC } from './contract.js';
import { InputError } from './core/errors.js';
import { parseTableName } from './core/identifiers.js';
import type { VerifyReport } from './core/report.js';
import { TIME } from './core/time-limits.js';
import { Deadline } from './db/deadline.js';
import { parseEvent } from './events.js';
import { recordVerifyRun, verifyRun } from './flows/verify-run.js';

export interface VerifySummary {
  readonly pair: string;
  readonly status: VerifyReport['status'];
  readonly reasons: readonly string[];
  readonly verifiedLsn: string | null;
  readonly coveragePct: number;
  readonly mismatches: number;
  readonly candidates: number;
  readonly localWrites: number;
  readonly runId: number;
  readonly divergenceIds: readonly number[];
}

export async function verifyHandler(event: unknown, context: Context): Promise<VerifySummary> {
  const e = parseEvent('verify', event);
  const config = loadVerifyConfig();
  const pair = config.pairs[e.pair];
  if (pair === undefined) {
    throw new InputError(`unknown pair ${JSON.stringify(e.pair)}; configured: ${Object.keys(config.pairs).join(', ')}`);
  }
  const table = e.table === undefined ? undefined : parseTableName(e.table);
  // the whole remaining time, less a margin to record the run and return; verify splits it itself
  const deadline = Deadline.fromLambda(context, TIME.lambdaVerifyMarginMs, { ms: TIME.lambdaVerifyMinMs, what: 'verify' });

  const pub = await connectionFor(`${e.pair}/publisher`, pair.publisherSecretId);
  const sub = await connectionFor(`${e.pair}/subscriber`, pair.subscriberSecretId);
  const control = await connectionFor('control', config.controlSecretId);
  const verified = await verifyRun(pub, sub, {
    ...(table !== undefined ? { table } : {}),
    minCoveragePct: config.minCoveragePct,
    deadline,
  });
  const run = await recordVerifyRun(
    control,
    {
      pair: e.pair,
      publisher: pair.publisherSecretId,
      subscriber: pair.subscriberSecretId,
      requestedBy: context.invokedFunctionArn,
      via: 'lambda',
      ...(e.table !== undefined ? { table: e.table } : {}),
    },
    verified,
  );

  const { report, figures } = verified;
  metrics.addDimension(DIMENSION.Pair, e.pair);
  metrics.addMetric(METRIC.DivergentBuckets, MetricUnit.Count, figures.divergentBuckets);
  metrics.addMetric(METRIC.CoveragePct, MetricUnit.Percent, figures.coveragePct);
  metrics.addMetric(METRIC.VerifyDurationMs, MetricUnit.Milliseconds, figures.durationMs);
  metrics.addMetric(METRIC.ReplicationBarrierMs, MetricUnit.Milliseconds, figures.barrierMs);
  metrics.addMetric(METRIC.ProbesSent, MetricUnit.Count, figures.probesSent);
  metrics.addMetric(METRIC.ProbeMaxHoldMs, MetricUnit.Milliseconds, figures.probeMaxHoldMs);
  metrics.addMetric(METRIC.LocalWrites, MetricUnit.Count, figures.localWrites);
  const summary: VerifySummary = {
    pair: e.pair,
    status: report.status,
    reasons: report.reasons,
    verifiedLsn: report.verifiedLsn,
    coveragePct: report.coveragePct,
    mismatches: figures.divergentBuckets,
    candidates: report.candidates.length,
    localWrites: figures.localWrites,
    runId: run.runId,
    divergenceIds: run.divergenceIds,
  };
  logger.info('verify finished', { ...summary });
  return summary;
}

export const handler = lambdaHandler(verifyHandler);
