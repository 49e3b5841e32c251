// The one middleware chain every Lambda handler runs under: the Powertools logger gets the
// invocation's context (request id, cold start) and the metrics are flushed as EMF at the end,
// also when the handler throws. A handler file exports `handler = lambdaHandler(itsFunction)`, so
// the five handlers cannot drift apart in what they log or publish.

import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { logger, metrics } from './observability.js';

export function lambdaHandler<R>(fn: (event: unknown, context: Context) => Promise<R>) {
  return middy(fn).use(injectLambdaContext(logger)).use(logMetrics(metrics));
}
