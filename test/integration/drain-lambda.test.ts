// The drain Lambda handler against real PostgreSQL; only Secrets Manager is faked, at the SDK
// boundary. Checks the event and secret validation, connection reuse and the EMF metrics.

import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OWNER, OWNER_PASSWORD } from '../../dev/pair.js';
import { closeConnections, LAMBDA_APPLICATION_NAME } from '../../functions/commons/connections.js';
import { clearSecretCache } from '../../functions/commons/secrets.js';
import { handler } from '../../functions/drain.js';
import { captureStdout, context } from '../support/lambda.js';
import { register } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.lines';
const sm = mockClient(SecretsManagerClient);

const ctx = usePair({
  label: 'lambda',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, v text)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, md5(i::text) FROM generate_series(1, 3000) i`);
  },
  ready: ({ pub, sub }) => register(pub, sub, T, { bucketSize: 100 }),
});

const secretFor = (database: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    engine: 'postgres',
    host: '127.0.0.1',
    port: String(ctx.pair.publisher.port),
    username: OWNER,
    password: OWNER_PASSWORD,
    dbname: database,
    ...extra,
  });

beforeAll(() => {
  process.env.AWS_REGION = 'eu-west-1';
  process.env.SYNCGUARD_DATABASES = JSON.stringify({
    pub: { secretId: 'sg/pub' },
    bad: { secretId: 'sg/bad' },
    bare: { secretId: 'sg/bare' },
  });
  process.env.SYNCGUARD_DATABASE = 'pub';
});

afterEach(async () => {
  sm.reset();
  clearSecretCache();
});

afterAll(async () => {
  await closeConnections();
  sm.restore();
});

describe('drain Lambda', () => {
  it('drains the configured database, reuses its connection, and emits the EMF metrics', async () => {
    sm.on(GetSecretValueCommand, { SecretId: 'sg/pub' }).resolves({ SecretString: secretFor(ctx.pair.name) });
    const out = captureStdout();
    let first: Awaited<ReturnType<typeof handler>>;
    try {
      first = await handler({ database: 'pub' }, context());
      await handler({}, context()); // the default database; same connection
    } finally {
      out.restore();
    }
    expect(first).toMatchObject({ database: 'pub', stoppedBecause: 'empty', bucketsRecomputed: 31, rowsHashed: 3000, remainingDirty: 0 });
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1); // cached
    const { rows } = await ctx.pair.pub.query(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1',
      [LAMBDA_APPLICATION_NAME],
    );
    expect(rows[0]?.n).toBe(1); // one connection per execution environment, reused

    const emf = out
      .lines()
      .map((l) => JSON.parse(l))
      .filter((o) => o._aws !== undefined);
    expect(emf).toHaveLength(2);
    const names = emf[0]._aws.CloudWatchMetrics[0].Metrics.map((m: { Name: string }) => m.Name).sort();
    expect(names).toEqual([
      'BucketsRecomputed',
      'DirtyBuckets',
      'DrainStatusUnknown',
      'DrainStoppedOnTime',
      'FaultyTables',
      'OldestDirtyAgeSeconds',
      'RowsHashed',
    ]);
    expect(emf[0]).toMatchObject({
      Database: 'pub',
      service: 'pg-sync-guard',
      BucketsRecomputed: 31,
      RowsHashed: 3000,
      DrainStoppedOnTime: 0,
      FaultyTables: 0,
    });
    expect(out.lines().join('\n')).not.toContain(OWNER_PASSWORD);
  });

  it('drains with several connections at once when SYNCGUARD_DRAIN_WORKERS says so', async () => {
    sm.on(GetSecretValueCommand, { SecretId: 'sg/pub' }).resolves({ SecretString: secretFor(ctx.pair.name) });
    await ctx.pair.pub.query(`UPDATE ${T} SET v = v || 'x' WHERE id % 3 = 0`); // every bucket dirty
    process.env.SYNCGUARD_DRAIN_WORKERS = '3';
    const out = captureStdout();
    try {
      const r = await handler({ database: 'pub' }, context());
      expect(r).toMatchObject({ stoppedBecause: 'empty', bucketsRecomputed: 31, rowsHashed: 3000, remainingDirty: 0 });
    } finally {
      out.restore();
      delete process.env.SYNCGUARD_DRAIN_WORKERS;
    }
    const { rows } = await ctx.pair.pub.query(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1',
      [LAMBDA_APPLICATION_NAME],
    );
    expect(rows[0]?.n).toBe(3); // one per worker, cached like the first
    process.env.SYNCGUARD_DRAIN_WORKERS = '17';
    try {
      await expect(handler({ database: 'pub' }, context())).rejects.toThrow(/invalid configuration: .*drainWorkers/);
    } finally {
      delete process.env.SYNCGUARD_DRAIN_WORKERS;
    }
  });

  it('reads a rotated secret again when the password it cached is refused, once', async () => {
    await closeConnections(); // a new execution environment's first connection
    sm.on(GetSecretValueCommand, { SecretId: 'sg/pub' })
      .resolvesOnce({ SecretString: secretFor(ctx.pair.name, { password: 'before-rotation' }) })
      .resolves({ SecretString: secretFor(ctx.pair.name) });
    const out = captureStdout();
    try {
      expect(await handler({ database: 'pub' }, context())).toMatchObject({ database: 'pub', stoppedBecause: 'empty' });
    } finally {
      out.restore();
    }
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
    expect(out.lines().join('\n')).not.toContain('before-rotation');

    // a password that stays wrong fails after one more read, naming the database, not the password
    await closeConnections();
    sm.reset();
    clearSecretCache();
    sm.on(GetSecretValueCommand, { SecretId: 'sg/pub' }).resolves({ SecretString: secretFor(ctx.pair.name, { password: 'still-wrong' }) });
    const out2 = captureStdout();
    try {
      const err = await handler({ database: 'pub' }, context()).catch((e: Error) => e);
      expect(String(err)).toMatch(/could not connect to the database pub/);
      expect(String(err)).not.toContain('still-wrong');
    } finally {
      out2.restore();
    }
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  });

  const badEvents: Array<[string, unknown, RegExp]> = [
    ['a database that is not a string', { database: 5 }, /invalid drain event: .*database/],
    ['an unknown key', { db: 'pub' }, /invalid drain event: .*db/],
    ['an unknown database', { database: 'nope' }, /unknown database "nope"; configured: pub, bad, bare/],
  ];
  it.each(badEvents)('refuses %s without touching Secrets Manager', async (_what, event, message) => {
    const out = captureStdout();
    try {
      await expect(handler(event, context())).rejects.toThrow(message);
    } finally {
      out.restore();
    }
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(0);
  });

  it('names the missing key of a secret with the wrong shape, and never its values', async () => {
    sm.on(GetSecretValueCommand, { SecretId: 'sg/bad' }).resolves({
      SecretString: JSON.stringify({ username: 'u', password: 'hunter2', port: 'x' }),
    });
    const out = captureStdout();
    try {
      const err = await handler({ database: 'bad' }, context()).catch((e: Error) => e);
      expect(String(err)).toMatch(/secret sg\/bad does not have the RDS secret shape: host \(missing\), port \(invalid\)/);
      expect(String(err)).not.toContain('hunter2');
    } finally {
      out.restore();
    }
  });

  it('says which command installs the schema on a database without it', async () => {
    sm.on(GetSecretValueCommand, { SecretId: 'sg/bare' }).resolves({ SecretString: secretFor('postgres') });
    const out = captureStdout();
    try {
      await expect(handler({ database: 'bare' }, context())).rejects.toThrow(
        /syncguard is not installed on the database bare; run: syncguard install --dsn/,
      );
    } finally {
      out.restore();
    }
  });

  it('refuses to start with no time left', async () => {
    const out = captureStdout();
    try {
      await expect(handler({}, context(0))).rejects.toThrow(/no time left to drain/);
    } finally {
      out.restore();
    }
  });
});
