// The deployment's one config file (syncguard.config.json; see syncguard.config.example.json and
// docs/deploy.md), validated with zod: unknown keys are refused, and an error names the key and
// what is allowed.

import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { BOOLEAN_HELP, booleanFrom } from '../functions/core/booleans.js';
import { MAX_DRAIN_WORKERS } from '../functions/core/drain.js';
import { parseTableName } from '../functions/core/identifiers.js';

const arn = (service: string) =>
  z
    .string()
    .regex(
      new RegExp(`^arn:aws[a-z-]*:${service}:[a-z0-9-]+:\\d{12}:.+$`),
      `must be an ARN of ${service} (arn:aws:${service}:<region>:<account>:...)`,
    );
const name = z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,39}$/, 'must be 1-40 letters, digits or -, starting with a letter');

const VpcSchema = z.strictObject({
  vpcId: z.string().regex(/^vpc-[0-9a-f]+$/, 'must be a VPC id (vpc-...)'),
  subnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]+$/, 'must be a subnet id (subnet-...)')).min(1),
  securityGroupIds: z.array(z.string().regex(/^sg-[0-9a-f]+$/, 'must be a security group id (sg-...)')).min(1),
});

const DatabaseSchema = z.strictObject({
  secretArn: arn('secretsmanager'),
  /** Instead of the secret's host and port: a proxy or a reader endpoint. */
  host: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  vpc: VpcSchema.optional(),
  /** Connections the scheduled drain of this database uses at once (SYNCGUARD_DRAIN_WORKERS). */
  drainWorkers: z.number().int().min(1).max(MAX_DRAIN_WORKERS).optional(),
});

/** A table as the CLI and the verify event take it: schema.table, each part plain or "quoted" as PostgreSQL quotes it. */
const tableName = z.string().refine(
  (t) => {
    try {
      parseTableName(t);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'must be schema.table (or table, in public), a part that is not a plain name "quoted" as PostgreSQL quotes it' },
);

const PairSchema = z.strictObject({
  publisher: name,
  subscriber: name,
  /** "all registered", or the tables to verify ("schema.table"). */
  tables: z.union([z.literal('all'), z.array(tableName).min(1)]).default('all'),
});

/** A yes/no key: a JSON boolean, or the words every syncguard boolean accepts (core/booleans.ts). */
const booleanSetting = z.preprocess(
  (v) => (typeof v === 'string' ? (booleanFrom(v) ?? v) : v),
  z.boolean({ error: (issue) => `${BOOLEAN_HELP}, got ${JSON.stringify(issue.input)}` }),
);

export const DeployConfigSchema = z
  .strictObject({
    /** Prefix of the stack and resource names. */
    name: name.default('syncguard'),
    databases: z.record(name, DatabaseSchema).refine((d) => Object.keys(d).length >= 2, 'needs at least a publisher and a subscriber'),
    pairs: z.record(name, PairSchema).refine((p) => Object.keys(p).length >= 1, 'needs at least one pair'),
    control: DatabaseSchema,
    schedules: z
      .strictObject({
        drainMinutes: z.number().int().min(1).max(1440).default(5),
        verifyMinutes: z.number().int().min(1).max(1440).default(15),
      })
      .default({ drainMinutes: 5, verifyMinutes: 15 }),
    thresholds: z
      .strictObject({
        oldestDirtyAgeSeconds: z.number().int().min(60).default(900),
        minCoveragePct: z.number().min(0).max(100).default(100),
      })
      .default({ oldestDirtyAgeSeconds: 900, minCoveragePct: 100 }),
    notify: z.union([z.strictObject({ email: z.email() }), z.strictObject({ topicArn: arn('sns') })]),
    approval: z
      .strictObject({
        fourEyes: booleanSetting.default(true),
        /** How long a plan stays valid, and how long the workflow waits for a decision. */
        expiryHours: z.number().min(1).max(720).default(24),
        maxRows: z.number().int().min(1).max(100_000).default(1000),
      })
      .default({ fourEyes: true, expiryHours: 24, maxRows: 1000 }),
    logRetentionDays: z.union([z.literal(7), z.literal(14), z.literal(30), z.literal(90), z.literal(180), z.literal(365)]).default(30),
    xray: booleanSetting.default(false),
  })
  .superRefine((c, ctx) => {
    for (const [pair, p] of Object.entries(c.pairs)) {
      for (const side of ['publisher', 'subscriber'] as const) {
        if (!(p[side] in c.databases)) {
          ctx.addIssue({
            code: 'custom',
            path: ['pairs', pair, side],
            message: `names database ${JSON.stringify(p[side])}; the databases are ${Object.keys(c.databases).join(', ')}`,
          });
        }
      }
      if (p.publisher === p.subscriber)
        ctx.addIssue({ code: 'custom', path: ['pairs', pair], message: 'publisher and subscriber must differ' });
    }
  });

export type DeployConfig = z.infer<typeof DeployConfigSchema>;

export class DeployConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeployConfigError';
  }
}

export function parseDeployConfig(value: unknown, source = 'the config'): DeployConfig {
  const parsed = DeployConfigSchema.safeParse(value);
  if (!parsed.success) throw new DeployConfigError(`${source} is not valid:\n${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export function loadDeployConfig(path: string): DeployConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new DeployConfigError(`cannot read the config file ${path}; copy syncguard.config.example.json and edit it`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DeployConfigError(`${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseDeployConfig(value, path);
}
