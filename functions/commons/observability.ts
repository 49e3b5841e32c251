// The Powertools logger and metrics every handler shares. The service name is also the metrics
// dimension the alarms in infra/ filter on, so it comes from one place.

import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DEFAULT_NAMESPACE, DEFAULT_SERVICE, ENV } from '../contract.js';

export const SERVICE = process.env[ENV.service] ?? DEFAULT_SERVICE;
export const METRICS_NAMESPACE = process.env[ENV.namespace] ?? DEFAULT_NAMESPACE;

export const logger = new Logger({ serviceName: SERVICE });
export const metrics = new Metrics({ serviceName: SERVICE, namespace: METRICS_NAMESPACE });
