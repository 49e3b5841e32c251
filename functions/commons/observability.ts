// The Powertools logger and metrics every handler shares. The service name is also the metrics
// dimension the alarms in infra/ filter on, so it comes from one place.

import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';

export const SERVICE = process.env.POWERTOOLS_SERVICE_NAME ?? 'pg-sync-guard';
export const METRICS_NAMESPACE = process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'SyncGuard';

export const logger = new Logger({ serviceName: SERVICE });
export const metrics = new Metrics({ serviceName: SERVICE, namespace: METRICS_NAMESPACE });
