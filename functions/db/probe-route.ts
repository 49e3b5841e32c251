// The catalogue reads and the two statements that route syncguard.probe through a subscription
// (flows/probe-route.ts decides when): one read or write per function.

import { escapeIdentifier } from 'pg';
import { TableRef } from '../core/identifiers.js';
import type { Client } from './connect.js';

/** The publications a subscription of this database subscribes to (empty when there is none of that name). */
export async function subscriptionPublications(sub: Client, subscription: string): Promise<string[]> {
  const { rows } = await sub.query<{ pubs: string[] }>(
    'SELECT subpublications AS pubs FROM pg_subscription WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())',
    [subscription],
  );
  return rows[0]?.pubs ?? [];
}

/**
 * Of these publications, those that already publish one of the tables (as itself, its partition
 * root or its leaves), by name, and whether each publishes syncguard.probe too.
 */
export async function publicationsCarrying(
  pub: Client,
  publications: readonly string[],
  tables: readonly TableRef[],
): Promise<{ pubname: string; probe: boolean }[]> {
  const { rows } = await pub.query<{ pubname: string; probe: boolean }>(
    `SELECT p.pubname, EXISTS (SELECT 1 FROM pg_publication_tables t WHERE t.pubname = p.pubname
                                  AND t.schemaname = 'syncguard' AND t.tablename = 'probe') AS probe
       FROM pg_publication p
      WHERE p.pubname = ANY($1)
        AND EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) x(s, n),
                           -- a partitioned table is published as its root or as its leaves
                           LATERAL (SELECT to_regclass(format('%I.%I', x.s, x.n)) AS relid
                                    UNION SELECT m.relid FROM pg_partition_tree(to_regclass(format('%I.%I', x.s, x.n))) m
                                    UNION SELECT a.relid FROM pg_partition_ancestors(to_regclass(format('%I.%I', x.s, x.n))) a) m
                           JOIN pg_class c ON c.oid = m.relid JOIN pg_namespace ns ON ns.oid = c.relnamespace
                           JOIN pg_publication_tables t ON t.schemaname = ns.nspname AND t.tablename = c.relname
                     WHERE t.pubname = p.pubname)
      ORDER BY p.pubname`,
    [publications, tables.map((t) => t.schema), tables.map((t) => t.table)],
  );
  return rows;
}

/** The statement that adds syncguard.probe to a publication (run by addProbeTo, or shown to its owner). */
export const addProbeSql = (publication: string) => `ALTER PUBLICATION ${escapeIdentifier(publication)} ADD TABLE syncguard.probe`;

/** The refresh that lets syncguard.probe into a subscription without copying any table's data. */
export const refreshSql = (subscription: string) =>
  `ALTER SUBSCRIPTION ${escapeIdentifier(subscription)} REFRESH PUBLICATION WITH (copy_data = false)`;

export async function addProbeTo(pub: Client, publication: string): Promise<void> {
  await pub.query(addProbeSql(publication));
}

export async function refreshWithoutCopy(sub: Client, subscription: string): Promise<void> {
  await sub.query(refreshSql(subscription));
}

/** The tables these publications publish, distinct. */
export async function publishedTables(pub: Client, publications: readonly string[]): Promise<TableRef[]> {
  const { rows } = await pub.query<{ schema: string; table: string }>(
    'SELECT DISTINCT schemaname AS schema, tablename AS table FROM pg_publication_tables WHERE pubname = ANY($1)',
    [publications],
  );
  return rows.map((r) => TableRef.of(r.schema, r.table));
}

/** The tables a subscription holds (pg_subscription_rel). */
export async function subscribedTables(sub: Client, subscription: string): Promise<TableRef[]> {
  const { rows } = await sub.query<{ schema: string; table: string }>(
    `SELECT n.nspname AS schema, c.relname AS table FROM pg_subscription_rel r
       JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`,
    [subscription],
  );
  return rows.map((r) => TableRef.of(r.schema, r.table));
}
