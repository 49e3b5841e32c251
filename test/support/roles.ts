// Login roles a test file makes on the shared servers (roles are cluster-wide, so each file names
// its own after its pair and drops them afterwards), and connections as one of them.

import pg from 'pg';
import { type ClusterInfo, superuserDsn } from '../../dev/cluster.js';

/** The same DSN as another login role. */
export const dsnAs = (dsn: string, role: string, password: string): string => dsn.replace(/\/\/[^@]+@/, `//${role}:${password}@`);

/** A connection to the DSN's database as another login role. */
export async function connectAs(dsn: string, role: string, password: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: dsnAs(dsn, role, password) });
  await c.connect();
  return c;
}

/** Drops the roles on each server; call after dropping the databases that hold their objects and grants. */
export async function dropRoles(clusters: readonly ClusterInfo[], roles: readonly string[]): Promise<void> {
  for (const c of clusters) {
    const admin = new pg.Client({ connectionString: superuserDsn(c) });
    await admin.connect();
    try {
      for (const r of roles) await admin.query(`DROP ROLE IF EXISTS "${r}"`).catch(() => {});
    } finally {
      await admin.end();
    }
  }
}
