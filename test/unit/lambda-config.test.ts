import { describe, expect, it } from 'vitest';
import { loadConfig, loadVerifyConfig, pickDatabase } from '../../functions/commons/config.js';
import { parseRdsSecret, toDsn } from '../../functions/commons/secrets.js';

const env = (over: Record<string, string | undefined>) => ({ SYNCGUARD_DATABASES: JSON.stringify({ a: { secretId: 's/a' } }), ...over });

describe('loadConfig', () => {
  it('reads databases, the default and the re-sweep interval', () => {
    const c = loadConfig(env({ SYNCGUARD_RESWEEP_HOURS: '6' }));
    expect(c).toEqual({ databases: { a: { secretId: 's/a' } }, resweepIntervalMs: 6 * 3600_000, drainWorkers: 1 });
    expect(loadConfig(env({ SYNCGUARD_DRAIN_WORKERS: '4' })).drainWorkers).toBe(4);
    expect(() => loadConfig(env({ SYNCGUARD_DRAIN_WORKERS: '0' }))).toThrow(/invalid configuration: .*drainWorkers/);
    expect(() => loadConfig(env({ SYNCGUARD_DRAIN_WORKERS: '2.5' }))).toThrow(/invalid configuration: .*drainWorkers/);
    expect(loadConfig(env({ SYNCGUARD_RESWEEP_HOURS: '0' })).resweepIntervalMs).toBeNull();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('refuses missing, malformed and mistyped configuration with the variable named', () => {
    expect(() => loadConfig({})).toThrow('environment variable SYNCGUARD_DATABASES is required');
    expect(() => loadConfig({ SYNCGUARD_DATABASES: '{' })).toThrow('SYNCGUARD_DATABASES is not valid JSON');
    expect(() => loadConfig({ SYNCGUARD_DATABASES: '{}' })).toThrow(/at least one database is required/);
    expect(() => loadConfig({ SYNCGUARD_DATABASES: JSON.stringify({ a: { secretID: 'x' } }) })).toThrow(
      /invalid configuration: .*secretID/,
    );
    expect(() => loadConfig(env({ SYNCGUARD_DATABASE: 'b' }))).toThrow(
      'SYNCGUARD_DATABASE names b, which is not in SYNCGUARD_DATABASES (a)',
    );
    expect(() => loadConfig(env({ SYNCGUARD_RESWEEP_HOURS: 'daily' }))).toThrow(/SYNCGUARD_RESWEEP_HOURS must be a number/);
  });
});

describe('pickDatabase', () => {
  const two = loadConfig({ SYNCGUARD_DATABASES: JSON.stringify({ a: { secretId: 'x' }, b: { secretId: 'y' } }) });
  it('uses the named, the default, or the only database', () => {
    expect(pickDatabase(two, 'b')).toBe('b');
    expect(pickDatabase(loadConfig(env({})), undefined)).toBe('a');
    expect(
      pickDatabase(
        loadConfig({
          ...env({}),
          SYNCGUARD_DATABASES: JSON.stringify({ a: { secretId: 'x' }, b: { secretId: 'y' } }),
          SYNCGUARD_DATABASE: 'b',
        }),
        undefined,
      ),
    ).toBe('b');
  });
  it('refuses an unknown or ambiguous one', () => {
    expect(() => pickDatabase(two, 'c')).toThrow('unknown database "c"; configured: a, b');
    expect(() => pickDatabase(two, undefined)).toThrow('the event names no database and none is the default; configured: a, b');
  });
});

describe('parseRdsSecret', () => {
  const ok = { engine: 'postgres', host: 'db.example', username: 'u', password: 'p@ss/word', dbname: 'app', port: '6543' };
  it('accepts the RDS shape with the port as a string or a number', () => {
    expect(parseRdsSecret('s', JSON.stringify(ok))).toEqual({
      host: 'db.example',
      port: 6543,
      user: 'u',
      password: 'p@ss/word',
      database: 'app',
    });
    expect(parseRdsSecret('s', JSON.stringify({ ...ok, port: 5432 })).port).toBe(5432);
    expect(toDsn(parseRdsSecret('s', JSON.stringify(ok)))).toBe('postgres://u:p%40ss%2Fword@db.example:6543/app');
  });
  it('names missing or invalid keys and never echoes values', () => {
    const e = () => parseRdsSecret('s', JSON.stringify({ username: 'u', password: 'topsecret' }));
    expect(e).toThrow('secret s does not have the RDS secret shape: host (missing)');
    expect(() => parseRdsSecret('s', 'not json')).toThrow(/secret s is not JSON/);
    expect(() => parseRdsSecret('s', JSON.stringify({ ...ok, engine: 'mysql' }))).toThrow('secret s is for engine mysql, not PostgreSQL');
    try {
      e();
    } catch (err) {
      expect(String(err)).not.toContain('topsecret');
    }
  });
});

describe('loadVerifyConfig', () => {
  const pairs = JSON.stringify({ p: { publisherSecretId: 'a', subscriberSecretId: 'b' } });
  it('reads pairs, the control-plane secret and the minimum coverage', () => {
    expect(loadVerifyConfig({ SYNCGUARD_PAIRS: pairs, SYNCGUARD_CONTROL_SECRET_ID: 'c' })).toEqual({
      pairs: { p: { publisherSecretId: 'a', subscriberSecretId: 'b' } },
      controlSecretId: 'c',
      minCoveragePct: 100,
    });
  });
  it('requires the control plane (every run is recorded) and well-formed pairs', () => {
    expect(() => loadVerifyConfig({ SYNCGUARD_PAIRS: pairs })).toThrow('environment variable SYNCGUARD_CONTROL_SECRET_ID is required');
    expect(() =>
      loadVerifyConfig({ SYNCGUARD_PAIRS: JSON.stringify({ p: { publisherSecretId: 'a' } }), SYNCGUARD_CONTROL_SECRET_ID: 'c' }),
    ).toThrow(/invalid configuration: .*subscriberSecretId/);
    expect(() => loadVerifyConfig({ SYNCGUARD_PAIRS: pairs, SYNCGUARD_CONTROL_SECRET_ID: 'c', SYNCGUARD_MIN_COVERAGE: '120' })).toThrow(
      /invalid configuration/,
    );
  });
});
