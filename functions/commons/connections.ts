// One PostgreSQL connection per database and execution environment, reused across invocations
// and replaced when it broke.

import { type Client, connect } from '../db/connect.js';
import { getCredentials, toDsn } from './secrets.js';

export const LAMBDA_APPLICATION_NAME = 'syncguard-lambda';

const open = new Map<string, Client>();

export async function connectionFor(name: string, secretId: string): Promise<Client> {
  const existing = open.get(name);
  if (existing !== undefined) {
    try {
      await existing.query('SELECT 1');
      return existing;
    } catch {
      open.delete(name);
      await existing.end().catch(() => {});
    }
  }
  const client = await connect(toDsn(await getCredentials(secretId)), `database ${name}`, { applicationName: LAMBDA_APPLICATION_NAME });
  open.set(name, client);
  return client;
}

/** Closes every cached connection (tests; a Lambda never needs to). */
export async function closeConnections(): Promise<void> {
  const all = [...open.values()];
  open.clear();
  await Promise.all(all.map((c) => c.end().catch(() => {})));
}
