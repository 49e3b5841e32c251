// Lambda: inspect diverged buckets and store a repair plan for each, for a person to approve.
// Event: { "divergenceIds": [1, 2] } (what the verify Lambda returns), or
//        { "pair": "<name>", "table": "schema.table", "bucket": "17" }.
// Returns per bucket the plan id, a summary and the SQL preview (for the notification). Values
// appear only in the preview the approver needs; the log holds counts.

import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { ownPrincipal } from './commons/aws-identity.js';
import { loadRepairConfig } from './commons/config.js';
import { connectionFor } from './commons/connections.js';
import { lambdaHandler } from './commons/handler.js';
import { logger, metrics } from './commons/observability.js';
import { METRIC } from './contract.js';
import { InputError } from './core/errors.js';
import { tableFromText } from './core/identifiers.js';
import { TIME } from './core/time-limits.js';
import { Deadline } from './db/deadline.js';
import { divergencesById } from './db/plans.js';
import { parseEvent } from './events.js';
import { storePlan } from './flows/plans.js';
import { planBucket } from './flows/repair.js';

/** Lines of SQL preview returned per plan (the rest is in the control plane). */
const PREVIEW_LINES = 40;

export interface InspectedPlan {
  readonly planId: number;
  readonly divergenceId: number | null;
  readonly pair: string;
  readonly table: string;
  readonly bucket: string;
  readonly rowCount: number;
  readonly diffs: Readonly<Record<string, number>>;
  readonly checksum: string;
  readonly expiresAt: string;
  readonly sqlPreview: string;
}

export async function inspectHandler(event: unknown, context: Context): Promise<{ plans: InspectedPlan[] }> {
  const e = parseEvent('inspect', event);
  // the invocation's end less a margin to store the plans and return; each bucket gets what is left
  const deadline = Deadline.fromLambda(context, TIME.lambdaMarginMs);
  const config = loadRepairConfig();
  const control = await connectionFor('control', config.controlSecretId);
  const targets =
    'divergenceIds' in e ? await divergencesById(control, e.divergenceIds) : [{ id: null, pair: e.pair, table: e.table, bucket: e.bucket }];
  if ('divergenceIds' in e && targets.length < e.divergenceIds.length) {
    const known = new Set(targets.map((t) => t.id));
    throw new InputError(`unknown divergence id(s): ${e.divergenceIds.filter((i) => !known.has(i)).join(', ')}`);
  }
  const plans: InspectedPlan[] = [];
  for (const t of targets) {
    const pair = config.pairs[t.pair];
    if (pair === undefined)
      throw new InputError(`unknown pair ${JSON.stringify(t.pair)}; configured: ${Object.keys(config.pairs).join(', ')}`);
    const pub = await connectionFor(`${t.pair}/publisher`, pair.publisherSecretId);
    const sub = await connectionFor(`${t.pair}/subscriber`, pair.subscriberSecretId);
    const { inspection, plan } = await planBucket(pub, sub, tableFromText(t.table), t.bucket, {
      pair: t.pair,
      maxRows: config.planMaxRows,
      expiresInMs: config.planExpiryMs,
      deadline: deadline.orAtLeast(TIME.minLimitMs),
    });
    // made by this function's own AWS principal (STS), which four-eyes compares with the approver's
    const stored = await storePlan(control, plan, await ownPrincipal());
    const diffs: Record<string, number> = {};
    for (const d of inspection.diffs) diffs[d.kind] = (diffs[d.kind] ?? 0) + 1;
    plans.push({
      planId: stored.planId,
      divergenceId: stored.divergenceId,
      pair: t.pair,
      table: plan.table.text,
      bucket: plan.bucket,
      rowCount: plan.rowCount,
      diffs,
      checksum: stored.checksum,
      expiresAt: plan.expiresAt,
      sqlPreview: plan.sql.split('\n').slice(0, PREVIEW_LINES).join('\n'),
    });
    // counts only: row values never go to the log
    logger.info('plan stored', {
      planId: stored.planId,
      pair: t.pair,
      table: plan.table,
      bucket: plan.bucket,
      rowCount: plan.rowCount,
      diffs,
    });
    metrics.addMetric(METRIC.PlannedRows, MetricUnit.Count, plan.rowCount);
  }
  return { plans };
}

export const handler = lambdaHandler(inspectHandler);
