// Output sinks and connection handling shared by the CLI commands.

import { type Client, connect } from '../functions/db/connect.js';
import type { Deadline } from '../functions/db/deadline.js';

export type Out = (line: string) => void;

/**
 * Connects to each DSN (in order), runs fn, and always closes every connection. With a deadline,
 * the connection attempts and every query end by then: a frozen or unreachable node ends the
 * command on time, with an error that names it.
 */
export async function withClients<T>(
  dsns: Array<[string, string]>,
  fn: (clients: Client[]) => Promise<T>,
  deadline?: Deadline,
): Promise<T> {
  const clients: Client[] = [];
  try {
    for (const [dsn, label] of dsns) clients.push(await connect(dsn, label, deadline === undefined ? {} : { deadline }));
    return await fn(clients);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}
