// Database credentials from AWS Secrets Manager, in the RDS secret JSON shape
// ({engine, host, username, password, dbname, port}), cached per execution environment.

import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { z } from 'zod';
import { InputError } from '../core/errors.js';

const RdsSecretSchema = z.object({
  engine: z.string().optional(),
  host: z.string().min(1),
  username: z.string().min(1),
  password: z.string().min(1),
  dbname: z.string().min(1).optional(),
  port: z.union([z.number().int().positive(), z.string().regex(/^\d+$/).transform(Number)]).optional(),
});

export interface DbCredentials {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

const CACHE_MS = 5 * 60 * 1000;
const cache = new Map<string, { at: number; value: DbCredentials }>();
let client: SecretsManagerClient | undefined;

/** Parses an RDS-shaped secret; a wrong shape names the missing or bad key, never the values. */
export function parseRdsSecret(secretId: string, text: string | undefined): DbCredentials {
  let json: unknown;
  try {
    json = JSON.parse(text ?? '');
  } catch {
    throw new InputError(`secret ${secretId} is not JSON; expected the RDS secret shape {host, port, username, password, dbname}`);
  }
  const r = RdsSecretSchema.safeParse(json);
  if (!r.success) {
    const keys = r.error.issues.map(
      (i) => `${i.path.join('.') || '(root)'} (${i.code === 'invalid_type' && i.input === undefined ? 'missing' : 'invalid'})`,
    );
    throw new InputError(`secret ${secretId} does not have the RDS secret shape: ${keys.join(', ')}`);
  }
  if (r.data.engine !== undefined && !/postgres/i.test(r.data.engine)) {
    throw new InputError(`secret ${secretId} is for engine ${r.data.engine}, not PostgreSQL`);
  }
  return {
    host: r.data.host,
    port: r.data.port ?? 5432,
    user: r.data.username,
    password: r.data.password,
    database: r.data.dbname ?? 'postgres',
  };
}

export async function getCredentials(secretId: string, now = Date.now()): Promise<DbCredentials> {
  const hit = cache.get(secretId);
  if (hit !== undefined && now - hit.at < CACHE_MS) return hit.value;
  client ??= new SecretsManagerClient({});
  const out = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
  const value = parseRdsSecret(secretId, out.SecretString);
  cache.set(secretId, { at: now, value });
  return value;
}

/** A postgres:// URL for the credentials (used only in memory, never logged). */
export function toDsn(c: DbCredentials): string {
  return `postgres://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${encodeURIComponent(c.database)}`;
}

export function clearSecretCache(): void {
  cache.clear();
}
