// Login roles a test file makes on the shared servers (roles are cluster-wide, so each file names
// its own after its pair and drops them afterwards), and connections as one of them.

import { type ClusterInfo, superuserDsn } from '../../dev/cluster.js';
import { plainNode } from '../../dev/plain-node.js';
import type { Client } from '../../functions/db/connect.js';

/** The same DSN as another login role. */
export const dsnAs = (dsn: string, role: string, password: string): string => dsn.replace(/\/\/[^@]+@/, `//${role}:${password}@`);

/** A connection to the DSN's database as another login role. */
export async function connectAs(dsn: string, role: string, password: string): Promise<Client> {
  const c = await plainNode(dsnAs(dsn, role, password));
  return c;
}

/** Drops the roles on each server; call after dropping the databases that hold their objects and grants. */
export async function dropRoles(clusters: readonly ClusterInfo[], roles: readonly string[]): Promise<void> {
  for (const c of clusters) {
    const admin = await plainNode(superuserDsn(c));
    try {
      for (const r of roles) await admin.query(`DROP ROLE IF EXISTS "${r}"`).catch(() => {});
    } finally {
      await admin.close();
    }
  }
}
