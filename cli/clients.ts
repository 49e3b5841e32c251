// Output sinks and connection handling shared by the CLI commands.

import { type Client, closeClient, connect } from '../functions/db/connect.js';

export type Out = (line: string) => void;

export async function withClients<T>(dsns: Array<[string, string]>, fn: (clients: Client[]) => Promise<T>): Promise<T> {
  const clients: Client[] = [];
  try {
    for (const [dsn, label] of dsns) clients.push(await connect(dsn, label));
    return await fn(clients);
  } finally {
    await Promise.all(clients.map(closeClient));
  }
}
