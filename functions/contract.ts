// The names the deployment (infra/) and the handlers must agree on, in one place: metric
// namespace, service dimension, metric and dimension names, environment keys, and the error
// names a workflow routes on. infra/ imports this module; nothing here has a side effect.

export { ERROR_NAMES, RETRYABLE_ERRORS } from './core/errors.js';

/** The metrics namespace and the `service` dimension every metric carries (Powertools). */
export const DEFAULT_SERVICE = 'pg-sync-guard';
export const DEFAULT_NAMESPACE = 'SyncGuard';

/** Dimensions besides `service`. */
export const DIMENSION = Object.freeze({ Pair: 'Pair', Database: 'Database' } as const);

export const METRIC = Object.freeze({
  // drain, per Database
  DirtyBuckets: 'DirtyBuckets',
  DrainStatusUnknown: 'DrainStatusUnknown',
  OldestDirtyAgeSeconds: 'OldestDirtyAgeSeconds',
  BucketsRecomputed: 'BucketsRecomputed',
  RowsHashed: 'RowsHashed',
  DrainStoppedOnTime: 'DrainStoppedOnTime',
  FaultyTables: 'FaultyTables',
  // verify, per Pair
  DivergentBuckets: 'DivergentBuckets',
  CoveragePct: 'CoveragePct',
  VerifyDurationMs: 'VerifyDurationMs',
  ReplicationBarrierMs: 'ReplicationBarrierMs',
  ProbesSent: 'ProbesSent',
  ProbeMaxHoldMs: 'ProbeMaxHoldMs',
  LocalWrites: 'LocalWrites',
  // inspect (no dimension) and repair, per Pair
  PlannedRows: 'PlannedRows',
  RepairedRows: 'RepairedRows',
  RepairSkippedRows: 'RepairSkippedRows',
} as const);

/** Environment keys the handlers read (functions/commons/config.ts says what each means). */
export const ENV = Object.freeze({
  service: 'POWERTOOLS_SERVICE_NAME',
  namespace: 'POWERTOOLS_METRICS_NAMESPACE',
  databases: 'SYNCGUARD_DATABASES',
  database: 'SYNCGUARD_DATABASE',
  resweepHours: 'SYNCGUARD_RESWEEP_HOURS',
  drainMarginMs: 'SYNCGUARD_DRAIN_MARGIN_MS',
  drainWorkers: 'SYNCGUARD_DRAIN_WORKERS',
  pairs: 'SYNCGUARD_PAIRS',
  controlSecretId: 'SYNCGUARD_CONTROL_SECRET_ID',
  minCoverage: 'SYNCGUARD_MIN_COVERAGE',
  fourEyes: 'SYNCGUARD_FOUR_EYES',
  planMaxRows: 'SYNCGUARD_PLAN_MAX_ROWS',
  planExpiryHours: 'SYNCGUARD_PLAN_EXPIRY_HOURS',
  endpointOverrides: 'SYNCGUARD_ENDPOINT_OVERRIDES',
} as const);
