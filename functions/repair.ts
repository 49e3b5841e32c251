// Lambda: apply an approved plan. Event: { "planId": 7, "claim"?: "<execution id>" }. Refuses (named errors the workflow
// routes on) a plan that is not approved, rejected, expired, altered or already applied; applies
// it through the subscription; records the outcome; returns the counts and whether the bucket is
// now equal (the workflow's re-verify).

import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { loadRepairConfig } from './commons/config.js';
import { connectionFor } from './commons/connections.js';
import { lambdaHandler } from './commons/handler.js';
import { logger, metrics } from './commons/observability.js';
import { DIMENSION, METRIC } from './contract.js';
import { InputError } from './core/errors.js';
import { TIME } from './core/time-limits.js';
import { Deadline } from './db/deadline.js';
import { loadPlan } from './db/plans.js';
import { parseEvent } from './events.js';
import { applyStoredPlan } from './flows/plans.js';

export async function repairHandler(event: unknown, context: Context) {
  const e = parseEvent('repair', event);
  // the invocation's end less a margin to record the outcome and return
  const deadline = Deadline.fromLambda(context, TIME.lambdaMarginMs);
  const config = loadRepairConfig();
  const control = await connectionFor('control', config.controlSecretId);
  const plan = await loadPlan(control, e.planId);
  if (plan === null) throw new InputError(`plan ${e.planId} does not exist in this control plane`);
  const pair = config.pairs[plan.pair];
  if (pair === undefined) throw new InputError(`plan ${plan.planId} is for pair ${JSON.stringify(plan.pair)}, which is not configured`);
  const pub = await connectionFor(`${plan.pair}/publisher`, pair.publisherSecretId);
  const sub = await connectionFor(`${plan.pair}/subscriber`, pair.subscriberSecretId);
  const r = await applyStoredPlan(control, pub, sub, {
    planId: plan.planId,
    // the workflow's execution; a direct invocation's request id (kept by Lambda's own retries)
    claim: e.claim ?? `lambda:${context.awsRequestId}`,
    deadline: deadline.orAtLeast(TIME.minLimitMs),
  });
  const summary = {
    planId: r.planId,
    pair: plan.pair,
    table: r.table,
    bucket: r.bucket,
    counts: r.counts,
    bucketAfter: r.bucketAfter,
    holdMs: r.holdMs,
    applyMs: r.applyMs,
    retried: r.retried,
  };
  metrics.addDimension(DIMENSION.Pair, plan.pair);
  metrics.addMetric(METRIC.RepairedRows, MetricUnit.Count, r.counts.applied ?? 0);
  metrics.addMetric(METRIC.RepairSkippedRows, MetricUnit.Count, r.changes.length - (r.counts.applied ?? 0) - (r.counts.already_equal ?? 0));
  logger.info('repair finished', summary);
  return summary;
}

export const handler = lambdaHandler(repairHandler);
