// The verify Lambda handler against a real pair and control plane; only Secrets Manager is faked.

import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OWNER, OWNER_PASSWORD } from '../../dev/pair.js';
import { plainNode } from '../../dev/plain-node.js';
import { closeConnections } from '../../functions/commons/connections.js';
import { clearSecretCache } from '../../functions/commons/secrets.js';
import { ERROR_NAMES, RETRYABLE_ERRORS, TimeLimitError } from '../../functions/core/errors.js';
import { connect } from '../../functions/db/connect.js';
import { installControl } from '../../functions/db/install.js';
import { handler } from '../../functions/verify.js';
import { captureStdout, context } from '../support/lambda.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.payments';
const sm = mockClient(SecretsManagerClient);

const ctx = usePair({
  label: 'vlambda',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id bigint PRIMARY KEY, amount numeric)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, i FROM generate_series(1, 2000) i`);
    await pair.pub.query(`CREATE DATABASE ${pair.name}_ctl OWNER ${OWNER}`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

const secret = (port: number, dbname: string) => ({
  SecretString: JSON.stringify({ engine: 'postgres', host: '127.0.0.1', port, username: OWNER, password: OWNER_PASSWORD, dbname }),
});

beforeAll(async () => {
  process.env.AWS_REGION = 'eu-west-1';
  process.env.SYNCGUARD_PAIRS = JSON.stringify({ orders: { publisherSecretId: 'sg/pub', subscriberSecretId: 'sg/sub' } });
  process.env.SYNCGUARD_CONTROL_SECRET_ID = 'sg/control';
  const c = await connect(ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl'), 'control');
  await installControl(c);
  await c.close();
  sm.on(GetSecretValueCommand, { SecretId: 'sg/pub' }).resolves(secret(ctx.pair.publisher.port, ctx.pair.name));
  sm.on(GetSecretValueCommand, { SecretId: 'sg/sub' }).resolves(secret(ctx.pair.subscriber.port, ctx.pair.name));
  sm.on(GetSecretValueCommand, { SecretId: 'sg/control' }).resolves(secret(ctx.pair.publisher.port, `${ctx.pair.name}_ctl`));
});

afterAll(async () => {
  await closeConnections();
  clearSecretCache();
  sm.restore();
  await ctx.pair.pub.query(`DROP DATABASE IF EXISTS ${ctx.pair.name}_ctl WITH (FORCE)`).catch(() => {});
});

async function invoke(event: unknown) {
  const out = captureStdout();
  try {
    return { result: await handler(event, context(120_000)), lines: out.lines() };
  } finally {
    out.restore();
  }
}

describe('verify Lambda', () => {
  it('verifies a configured pair, records the run, and emits the EMF metrics', async () => {
    const { result, lines } = await invoke({ pair: 'orders' });
    expect(result).toMatchObject({ pair: 'orders', status: 'in_sync', coveragePct: 100, mismatches: 0, divergenceIds: [] });
    expect(result.runId).toBeGreaterThan(0);
    const emf = lines.map((l) => JSON.parse(l)).filter((o) => o._aws !== undefined);
    expect(emf).toHaveLength(1);
    expect(emf[0]._aws.CloudWatchMetrics[0].Metrics.map((m: { Name: string }) => m.Name).sort()).toEqual([
      'CoveragePct',
      'DivergentBuckets',
      'LocalWrites',
      'ProbeMaxHoldMs',
      'ProbesSent',
      'ReplicationBarrierMs',
      'VerifyDurationMs',
    ]);
    expect(emf[0]).toMatchObject({ Pair: 'orders', service: 'pg-sync-guard', DivergentBuckets: 0, CoveragePct: 100 });
    expect(lines.join('\n')).not.toContain(OWNER_PASSWORD);
  });

  it('returns the ids of the divergences it confirmed, to start an investigation from', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET amount = 0 WHERE id IN (150, 1750)`);
    const { result } = await invoke({ pair: 'orders', table: T });
    expect(result).toMatchObject({ status: 'diverged', mismatches: 2, localWrites: 2 });
    expect(result.divergenceIds).toHaveLength(2);
    const c = await plainNode(ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl'));
    try {
      const { rows } = await c.query('SELECT bucket FROM syncguard_control.divergence WHERE divergence_id = ANY($1) ORDER BY bucket', [
        result.divergenceIds,
      ]);
      expect(rows).toEqual([{ bucket: '1' }, { bucket: '17' }]);
    } finally {
      await c.close();
    }
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['an event without a pair', {}, /invalid verify event: .*pair/],
    ['an unknown key', { pair: 'orders', tables: 'x' }, /invalid verify event: .*tables/],
    ['an unknown pair', { pair: 'nope' }, /unknown pair "nope"; configured: orders/],
    ['a table name with a semicolon', { pair: 'orders', table: 'public.t;drop' }, /"t;drop" is not a plain name/],
  ];
  it.each(bad)('refuses %s', async (_what, event, message) => {
    await expect(invoke(event)).rejects.toThrow(message);
  });

  it('refuses to start with too little time left, with the error a workflow routes on', async () => {
    const err = await handler({ pair: 'orders' }, context(6000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeLimitError);
    expect((err as Error).name).toBe(ERROR_NAMES.TimeLimitError);
    expect(RETRYABLE_ERRORS).toContain((err as Error).name);
    expect((err as Error).message).toMatch(/^not enough time left to verify \(3000 ms after the margin/);
  });
});
