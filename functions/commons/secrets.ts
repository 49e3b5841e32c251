// Database credentials from AWS Secrets Manager, in the RDS secret JSON shape
// ({engine, host, username, password, dbname, port}), fetched through Powertools' getSecret, which
// caches each secret per execution environment for SECRET_MAX_AGE_S. A password refused because
// the secret was rotated since it was read is read again at once (commons/connections.ts).

import { clearCaches } from '@aws-lambda-powertools/parameters';
import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
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

/** How long a fetched secret is reused, in seconds. */
export const SECRET_MAX_AGE_S = 300;

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

/** The credentials in a secret; `fresh` reads Secrets Manager again instead of the cache (after a refused password). */
export async function getCredentials(secretId: string, fresh = false): Promise<DbCredentials> {
  const text = await getSecret(secretId, { maxAge: SECRET_MAX_AGE_S, forceFetch: fresh });
  return parseRdsSecret(secretId, typeof text === 'string' ? text : undefined);
}

/** A postgres:// URL for the credentials (used only in memory, never logged). */
export function toDsn(c: DbCredentials): string {
  return `postgres://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${encodeURIComponent(c.database)}`;
}

/** Forgets every fetched secret (tests that change what Secrets Manager answers). */
export function clearSecretCache(): void {
  clearCaches();
}
