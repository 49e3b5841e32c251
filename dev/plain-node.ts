// A node (functions/db/node.ts) over a plain pg connection: the driver's own session defaults
// (no syncguard application_name or timeouts), for tests that act as another application or
// role and hand that connection to syncguard's functions.

import pg from 'pg';
import type { Client } from '../functions/db/connect.js';
import { PgNode } from '../functions/db/node.js';

export async function plainNode(connectionString: string, label = 'database'): Promise<Client> {
  const c = new pg.Client({ connectionString });
  c.on('error', () => {}); // a connection a test ends on purpose must not crash the run
  await c.connect();
  return new PgNode(c, label);
}
