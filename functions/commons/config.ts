// The Lambdas' configuration, from the environment, validated once at the edge. Unknown keys are
// refused (a typo must not silently fall back to a default).
// Drain:
//   SYNCGUARD_DATABASES   JSON: {"<name>": {"secretId": "<Secrets Manager id or ARN>"}, ...}
//   SYNCGUARD_DATABASE    the database a drain event without "database" uses (optional when
//                         exactly one is configured)
//   SYNCGUARD_RESWEEP_HOURS   full re-sweep interval, default 24; 0 disables
//   SYNCGUARD_DRAIN_MARGIN_MS time kept free at the end of an invocation, default 10 % (50 ms..2 s)
//   SYNCGUARD_DRAIN_WORKERS   connections that drain at once, 1 to 16, default 1
// Verify:
//   SYNCGUARD_PAIRS       JSON: {"<name>": {"publisherSecretId": "...", "subscriberSecretId": "..."}}
//   SYNCGUARD_CONTROL_SECRET_ID   the control-plane database's secret (every run is recorded)
//   SYNCGUARD_MIN_COVERAGE        default 100 (probes resolve every dirty bucket)
// Inspect, approval and repair (the verify keys, and):
//   SYNCGUARD_FOUR_EYES           true: the approver may not be the plan's creator (default false;
//                                 added to the control plane's policy; read by core/booleans.ts)
//   SYNCGUARD_PLAN_MAX_ROWS       a plan may change at most this many rows, default 1000
//   SYNCGUARD_PLAN_EXPIRY_HOURS   a plan expires after this long, default 24

import { z } from 'zod';
import { parseBoolean } from '../core/booleans.js';
import { MAX_DRAIN_WORKERS } from '../core/drain.js';
import { InputError } from '../core/errors.js';

const DatabaseSchema = z.strictObject({ secretId: z.string().min(1) });

const ConfigSchema = z.strictObject({
  databases: z.record(z.string().min(1), DatabaseSchema).refine((d) => Object.keys(d).length > 0, 'at least one database is required'),
  defaultDatabase: z.string().min(1).optional(),
  resweepIntervalMs: z.number().int().min(0).nullable(),
  drainMarginMs: z.number().int().positive().optional(),
  drainWorkers: z.number().int().min(1).max(MAX_DRAIN_WORKERS),
});

export type Config = Readonly<z.infer<typeof ConfigSchema>>;

function parseJson(name: string, value: string | undefined): unknown {
  if (value === undefined || value.trim() === '') throw new InputError(`environment variable ${name} is required`);
  try {
    return JSON.parse(value);
  } catch {
    throw new InputError(`environment variable ${name} is not valid JSON`);
  }
}

function number(name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InputError(`environment variable ${name} must be a number, got ${JSON.stringify(value)}`);
  return n;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const hours = number('SYNCGUARD_RESWEEP_HOURS', env.SYNCGUARD_RESWEEP_HOURS) ?? 24;
  const margin = number('SYNCGUARD_DRAIN_MARGIN_MS', env.SYNCGUARD_DRAIN_MARGIN_MS);
  const workers = number('SYNCGUARD_DRAIN_WORKERS', env.SYNCGUARD_DRAIN_WORKERS) ?? 1;
  const parsed = ConfigSchema.safeParse({
    databases: parseJson('SYNCGUARD_DATABASES', env.SYNCGUARD_DATABASES),
    ...(env.SYNCGUARD_DATABASE ? { defaultDatabase: env.SYNCGUARD_DATABASE } : {}),
    resweepIntervalMs: hours === 0 ? null : Math.round(hours * 3600 * 1000),
    ...(margin !== undefined ? { drainMarginMs: margin } : {}),
    drainWorkers: workers,
  });
  if (!parsed.success) throw new InputError(`invalid configuration: ${z.prettifyError(parsed.error).replaceAll('\n', '; ')}`);
  const c = parsed.data;
  if (c.defaultDatabase !== undefined && !(c.defaultDatabase in c.databases)) {
    throw new InputError(
      `SYNCGUARD_DATABASE names ${c.defaultDatabase}, which is not in SYNCGUARD_DATABASES (${Object.keys(c.databases).join(', ')})`,
    );
  }
  return Object.freeze(c);
}

/** The configured database an event names, or the default one. */
export function pickDatabase(config: Config, requested: string | undefined): string {
  const names = Object.keys(config.databases);
  const name = requested ?? config.defaultDatabase ?? (names.length === 1 ? names[0] : undefined);
  if (name === undefined) {
    throw new InputError(`the event names no database and none is the default; configured: ${names.join(', ')}`);
  }
  if (!(name in config.databases)) throw new InputError(`unknown database ${JSON.stringify(name)}; configured: ${names.join(', ')}`);
  return name;
}

const PairSchema = z.strictObject({ publisherSecretId: z.string().min(1), subscriberSecretId: z.string().min(1) });

const VerifyConfigSchema = z.strictObject({
  pairs: z.record(z.string().min(1), PairSchema).refine((d) => Object.keys(d).length > 0, 'at least one pair is required'),
  controlSecretId: z.string().min(1),
  minCoveragePct: z.number().positive().max(100),
});

export type VerifyConfig = Readonly<z.infer<typeof VerifyConfigSchema>>;

export function loadVerifyConfig(env: NodeJS.ProcessEnv = process.env): VerifyConfig {
  const control = env.SYNCGUARD_CONTROL_SECRET_ID;
  if (control === undefined || control === '') throw new InputError('environment variable SYNCGUARD_CONTROL_SECRET_ID is required');
  const parsed = VerifyConfigSchema.safeParse({
    pairs: parseJson('SYNCGUARD_PAIRS', env.SYNCGUARD_PAIRS),
    controlSecretId: control,
    minCoveragePct: number('SYNCGUARD_MIN_COVERAGE', env.SYNCGUARD_MIN_COVERAGE) ?? 100,
  });
  if (!parsed.success) throw new InputError(`invalid configuration: ${z.prettifyError(parsed.error).replaceAll('\n', '; ')}`);
  return Object.freeze(parsed.data);
}

const RepairConfigSchema = z.strictObject({
  fourEyes: z.boolean(),
  planMaxRows: z.number().int().positive(),
  planExpiryMs: z.number().int().positive(),
});

export type RepairConfig = VerifyConfig & Readonly<z.infer<typeof RepairConfigSchema>>;

export function loadRepairConfig(env: NodeJS.ProcessEnv = process.env): RepairConfig {
  const parsed = RepairConfigSchema.safeParse({
    fourEyes: parseBoolean('SYNCGUARD_FOUR_EYES', env.SYNCGUARD_FOUR_EYES, false),
    planMaxRows: number('SYNCGUARD_PLAN_MAX_ROWS', env.SYNCGUARD_PLAN_MAX_ROWS) ?? 1000,
    planExpiryMs: Math.round((number('SYNCGUARD_PLAN_EXPIRY_HOURS', env.SYNCGUARD_PLAN_EXPIRY_HOURS) ?? 24) * 3600_000),
  });
  if (!parsed.success) throw new InputError(`invalid configuration: ${z.prettifyError(parsed.error).replaceAll('\n', '; ')}`);
  return Object.freeze({ ...loadVerifyConfig(env), ...parsed.data });
}
