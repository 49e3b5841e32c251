// One PostgreSQL connection per database and execution environment, reused across invocations
// and replaced when it broke.

import { z } from 'zod';
import { ENV } from '../contract.js';
import { InputError } from '../core/errors.js';
import { type Client, connect } from '../db/connect.js';
import { SQLSTATE, sqlstateOf } from '../db/sqlstate.js';
import { getCredentials, toDsn } from './secrets.js';

export const LAMBDA_APPLICATION_NAME = 'syncguard-lambda';

const open = new Map<string, Client>();

const OverridesSchema = z.record(
  z.string().min(1),
  z.strictObject({ host: z.string().min(1).optional(), port: z.number().int().min(1).max(65535).optional() }),
);

/**
 * Host and port to use instead of a secret's (SYNCGUARD_ENDPOINT_OVERRIDES, {"<secretId>": {host, port}}):
 * a proxy, a reader endpoint, or a tunnel. Credentials always come from the secret.
 */
export function endpointOverrides(
  env: NodeJS.ProcessEnv = process.env,
): Record<string, { host?: string | undefined; port?: number | undefined }> {
  const raw = env[ENV.endpointOverrides];
  if (raw === undefined || raw === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new InputError(`environment variable ${ENV.endpointOverrides} is not valid JSON`);
  }
  const parsed = OverridesSchema.safeParse(value);
  if (!parsed.success) throw new InputError(`invalid ${ENV.endpointOverrides}: ${z.prettifyError(parsed.error).replaceAll('\n', '; ')}`);
  return parsed.data;
}

export async function connectionFor(name: string, secretId: string): Promise<Client> {
  const existing = open.get(name);
  if (existing !== undefined) {
    try {
      await existing.query('SELECT 1');
      return existing;
    } catch {
      open.delete(name);
      await existing.close();
    }
  }
  const override = endpointOverrides()[secretId];
  const open1 = async (fresh: boolean) => {
    const secret = await getCredentials(secretId, fresh);
    const credentials = { ...secret, host: override?.host ?? secret.host, port: override?.port ?? secret.port };
    return connect(toDsn(credentials), `database ${name}`, { applicationName: LAMBDA_APPLICATION_NAME });
  };
  let client: Client;
  try {
    client = await open1(false);
  } catch (err) {
    // the secret was rotated after this environment cached it: read it again, once
    if (sqlstateOf(err instanceof Error ? err.cause : undefined) !== SQLSTATE.invalidPassword) throw err;
    client = await open1(true);
  }
  open.set(name, client);
  return client;
}

/** Closes every cached connection (tests; a Lambda never needs to). */
export async function closeConnections(): Promise<void> {
  const all = [...open.values()];
  open.clear();
  await Promise.all(all.map((c) => c.close()));
}
