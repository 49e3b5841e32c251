// A publisher database and a subscriber database with real logical replication, isolated per
// test file: each pair gets its own databases on the shared servers (and its own publication,
// subscription and slot), so test files run in any order and in parallel.

import { randomBytes } from 'node:crypto';
import type { Client } from '../functions/db/connect.js';
import { type ClusterInfo, SUPERUSER_PASSWORD, superuserDsn } from './cluster.js';
import { plainNode } from './plain-node.js';

/** The non-superuser role that owns the tables and the syncguard schema, as on RDS. */
export const OWNER = 'sg_owner';
export const OWNER_PASSWORD = 'sg-owner-pw';

export interface Pair {
  readonly name: string;
  readonly publisher: ClusterInfo;
  readonly subscriber: ClusterInfo;
  /** DSNs of the owner role (non-superuser) on each side. */
  readonly publisherDsn: string;
  readonly subscriberDsn: string;
  /** Superuser connections to the pair's databases. */
  readonly pub: Client;
  readonly sub: Client;
  /** Runs SQL on both databases (as the owner role: schema setup). */
  both(sql: string): Promise<void>;
  /** Runs SQL on one database as the owner role. */
  asOwner(side: 'publisher' | 'subscriber', sql: string): Promise<void>;
  /** Creates the publication (a table list, or null for FOR ALL TABLES) and the subscription, and waits for the initial sync. */
  subscribe(tables: readonly string[] | null, options?: { publicationSql?: string }): Promise<void>; // an existing publication named like the pair is kept
  /** Waits until the subscriber has applied everything the publisher has written so far. */
  catchUp(timeoutMs?: number): Promise<void>;
  /** Waits until every table of the subscription is in state r (ready). */
  waitForSync(timeoutMs?: number): Promise<void>;
  ownerClient(side: 'publisher' | 'subscriber'): Promise<Client>;
  dispose(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function client(dsn: string): Promise<Client> {
  return plainNode(dsn);
}

async function ensureOwnerRole(admin: Client, major: number): Promise<void> {
  await admin.query(`DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${OWNER}') THEN
        CREATE ROLE ${OWNER} LOGIN PASSWORD '${OWNER_PASSWORD}' NOSUPERUSER NOCREATEDB NOCREATEROLE;
      END IF;
    END $$`);
  if (major >= 16) await admin.query(`GRANT pg_create_subscription TO ${OWNER}`).catch(() => {});
}

export interface PairOptions {
  /** The publisher database's encoding (default: the cluster's, UTF8); e.g. LATIN1 for a migration to UTF8. */
  readonly publisherEncoding?: 'LATIN1' | 'SQL_ASCII' | 'WIN1252';
}

export async function createPair(
  publisher: ClusterInfo,
  subscriber: ClusterInfo,
  label = 'pair',
  options: PairOptions = {},
): Promise<Pair> {
  const name = `${label.replace(/[^a-z0-9_]/g, '_')}_${randomBytes(4).toString('hex')}`;
  const clients: Client[] = [];
  for (const c of [publisher, subscriber]) {
    const admin = await client(superuserDsn(c));
    try {
      // two test files may create the role at once; the loser of that race simply tries again
      await ensureOwnerRole(admin, c.majorVersion).catch(async () => ensureOwnerRole(admin, c.majorVersion));
      const encoding =
        c === publisher && options.publisherEncoding !== undefined
          ? ` ENCODING '${options.publisherEncoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`
          : '';
      await admin.query(`CREATE DATABASE ${name} OWNER ${OWNER}${encoding}`);
    } finally {
      await admin.close();
    }
    clients.push(await client(superuserDsn(c, name)));
  }
  const [pub, sub] = clients as [Client, Client];
  const ownerDsn = (c: ClusterInfo) => `postgres://${OWNER}:${OWNER_PASSWORD}@${c.host}:${c.port}/${name}`;
  let subscribed = false;
  const asOwner = async (c: ClusterInfo, sql: string) => {
    const o = await client(ownerDsn(c));
    try {
      await o.query(sql);
    } finally {
      await o.close();
    }
  };

  const waitForSync = async (timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await sub.query<{ pending: string }>(
        `SELECT count(*) FILTER (WHERE srsubstate <> 'r') AS pending FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`,
        [name],
      );
      if (Number(rows[0]?.pending) === 0) return;
      if (Date.now() > deadline) throw new Error(`initial sync of ${name} did not finish in ${timeoutMs} ms`);
      await sleep(50);
    }
  };

  const catchUp = async (timeoutMs = 60_000) => {
    const { rows } = await pub.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    const target = rows[0]?.lsn;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows: r } = await pub.query<{ ok: boolean }>(
        'SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $1',
        [name, target],
      );
      if (r[0]?.ok) return;
      if (Date.now() > deadline) throw new Error(`subscriber of ${name} did not catch up in ${timeoutMs} ms`);
      await sleep(20);
    }
  };

  return {
    name,
    publisher,
    subscriber,
    publisherDsn: ownerDsn(publisher),
    subscriberDsn: ownerDsn(subscriber),
    pub,
    sub,
    async both(sql) {
      for (const c of [publisher, subscriber]) await asOwner(c, sql);
    },
    asOwner: (side, sql) => asOwner(side === 'publisher' ? publisher : subscriber, sql),
    async subscribe(tables, options = {}) {
      const what = tables === null ? 'FOR ALL TABLES' : `FOR TABLE ${tables.join(', ')}`;
      const exists = await pub.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [name]);
      if (exists.rowCount === 0) await pub.query(options.publicationSql ?? `CREATE PUBLICATION ${name} ${what}`);
      const conn = `host=${publisher.host} port=${publisher.port} dbname=${name} user=postgres password=${SUPERUSER_PASSWORD}`;
      await sub.query(`CREATE SUBSCRIPTION ${name} CONNECTION '${conn}' PUBLICATION ${name} WITH (slot_name = '${name}')`);
      subscribed = true;
      await waitForSync();
    },
    catchUp,
    waitForSync,
    ownerClient: (side) => client(ownerDsn(side === 'publisher' ? publisher : subscriber)),
    async dispose() {
      try {
        if (subscribed) await sub.query(`DROP SUBSCRIPTION IF EXISTS ${name}`).catch(() => {});
        await pub
          .query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [name])
          .catch(() => {});
      } finally {
        await pub.close().catch(() => {});
        await sub.close().catch(() => {});
        for (const c of [publisher, subscriber]) {
          const admin = await client(superuserDsn(c));
          await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
          await admin.close();
        }
      }
    },
  };
}
