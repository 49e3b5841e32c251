// Where the publisher's single-row write cost goes, and what a trigger-free design would cost
// (issue 12): pgbench single-row updates by 4 clients on a 100,000-row table, against no trigger
// in the same run, with triggers that do a little more each step of what syncguard's statement
// trigger does (a function call with transition tables; computing the buckets; writing the mark),
// a row trigger writing its mark, and no trigger but a logical decoding reader (pgoutput) draining
// a slot every 200 ms, as pgEdge ACE reads changes. The trigger functions are stand-ins in a
// schema of their own (syncguard's real trigger is the "publisher single-row updates" row of the
// main table); each figure is the mean of 2 runs of 8 s.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SUPERUSER, SUPERUSER_PASSWORD } from '../dev/cluster.js';
import type { Pair } from '../dev/pair.js';
import type { Row } from './report.js';

const PGBENCH = '/usr/lib/postgresql/15/bin/pgbench';
const STMT = 'AFTER UPDATE ON wp.t REFERENCING OLD TABLE AS sg_old NEW TABLE AS sg_new FOR EACH STATEMENT';
const VARIANTS: Array<[string, string | null]> = [
  ['statement trigger, empty function', `${STMT} EXECUTE FUNCTION wp.f_empty()`],
  ['statement trigger, buckets computed', `${STMT} EXECUTE FUNCTION wp.f_compute()`],
  ['statement trigger, mark written (what syncguard does)', `${STMT} EXECUTE FUNCTION wp.f_mark()`],
  ['row trigger, mark written', 'AFTER UPDATE ON wp.t FOR EACH ROW EXECUTE FUNCTION wp.f_row()'],
  [
    'statement trigger as syncguard wrote it until 0022: mark, EXCEPTION block, SECURITY DEFINER, 7 pinned settings',
    `${STMT} EXECUTE FUNCTION wp.f_guarded_pinned()`,
  ],
  [
    'statement trigger as syncguard writes it since 0022: mark, EXCEPTION block, SECURITY DEFINER',
    `${STMT} EXECUTE FUNCTION wp.f_guarded()`,
  ],
];

/** The body of syncguard's statement trigger for integer buckets (0009), with its fault guard. */
const GUARDED = `DECLARE sg_b pg_catalog.int8[]; BEGIN
  BEGIN
    SELECT pg_catalog.array_agg(sg_u.b) INTO sg_b FROM (SELECT id / 1000 FROM sg_old UNION SELECT id / 1000 FROM sg_new) sg_u(b);
  EXCEPTION WHEN OTHERS THEN
    INSERT INTO wp.fault VALUES (SQLSTATE) ON CONFLICT DO NOTHING;
    RETURN NULL;
  END;
  INSERT INTO wp.dirty (reg_id, bucket, xid) SELECT 1, x, pg_catalog.pg_current_xact_id() FROM pg_catalog.unnest(sg_b) x ON CONFLICT DO NOTHING;
  RETURN NULL; END`;
const PINNED =
  "SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C' SET search_path = pg_catalog, pg_temp";

export async function measureWritePath(pair: Pair, log: (s: string) => void): Promise<Row[]> {
  if (!existsSync(PGBENCH)) {
    log(`writepath: skipped, ${PGBENCH} is not installed`);
    return [];
  }
  const db = pair.pub;
  await db.query(`CREATE SCHEMA wp;
    CREATE UNLOGGED TABLE wp.dirty (reg_id int, bucket bigint, xid xid8, marked_at timestamptz DEFAULT clock_timestamp(),
                                    PRIMARY KEY (reg_id, bucket, xid));
    CREATE TABLE wp.t (id bigint PRIMARY KEY, amount numeric, updated_at timestamptz, note text);
    INSERT INTO wp.t SELECT i, i, now(), 'n' || i FROM generate_series(1, 100000) i;
    CREATE FUNCTION wp.f_empty() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
    CREATE FUNCTION wp.f_compute() RETURNS trigger LANGUAGE plpgsql AS $$ DECLARE b int8[]; BEGIN BEGIN
      SELECT array_agg(u.b) INTO b FROM (SELECT id / 1000 FROM sg_old UNION SELECT id / 1000 FROM sg_new) u(b);
      EXCEPTION WHEN OTHERS THEN RETURN NULL; END; RETURN NULL; END $$;
    CREATE FUNCTION wp.f_mark() RETURNS trigger LANGUAGE plpgsql AS $$ DECLARE b int8[]; BEGIN BEGIN
      SELECT array_agg(u.b) INTO b FROM (SELECT id / 1000 FROM sg_old UNION SELECT id / 1000 FROM sg_new) u(b);
      EXCEPTION WHEN OTHERS THEN RETURN NULL; END;
      INSERT INTO wp.dirty (reg_id, bucket, xid) SELECT 1, x, pg_current_xact_id() FROM unnest(b) x ON CONFLICT DO NOTHING;
      RETURN NULL; END $$;
    CREATE TABLE wp.fault (sqlstate text PRIMARY KEY);
    CREATE FUNCTION wp.f_guarded_pinned() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER ${PINNED} AS $$ ${GUARDED} $$;
    CREATE FUNCTION wp.f_guarded() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ ${GUARDED} $$;
    CREATE FUNCTION wp.f_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      INSERT INTO wp.dirty (reg_id, bucket, xid) VALUES (1, NEW.id / 1000, pg_current_xact_id()) ON CONFLICT DO NOTHING;
      IF OLD.id / 1000 <> NEW.id / 1000 THEN
        INSERT INTO wp.dirty (reg_id, bucket, xid) VALUES (1, OLD.id / 1000, pg_current_xact_id()) ON CONFLICT DO NOTHING;
      END IF;
      RETURN NULL; END $$;`);
  const dir = mkdtempSync(join(tmpdir(), 'sg-bench-wp-'));
  const script = join(dir, 'update.sql');
  writeFileSync(script, '\\set id random(1, 100000)\nUPDATE wp.t SET amount = amount + 1, updated_at = now() WHERE id = :id;\n');
  // asynchronous, so that the decoding reader below runs while pgbench does
  const tps = () =>
    new Promise<number>((resolve, reject) => {
      const child = spawn(
        PGBENCH,
        [
          '-n',
          '-c',
          '4',
          '-j',
          '2',
          '-T',
          '8',
          '-f',
          script,
          '-h',
          pair.publisher.host,
          '-p',
          String(pair.publisher.port),
          '-U',
          SUPERUSER,
          pair.name,
        ],
        { env: { ...process.env, PGPASSWORD: SUPERUSER_PASSWORD } },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.on('error', reject);
      child.on('close', () => {
        const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
        if (m?.[1] === undefined) reject(new Error(`pgbench failed: ${out}`));
        else resolve(Number(m[1]));
      });
    });
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  try {
    const results = new Map<string, number[]>();
    const add = (k: string, v: number) => results.set(k, [...(results.get(k) ?? []), v]);
    for (let round = 0; round < 2; round++) {
      for (const [name, ddl] of [['no trigger', null] as [string, string | null], ...VARIANTS]) {
        await db.query('DROP TRIGGER IF EXISTS wp_x ON wp.t; TRUNCATE wp.dirty');
        if (ddl !== null) await db.query(`CREATE TRIGGER wp_x ${ddl}`);
        add(name, await tps());
        log(`writepath: ${name}: ${Math.round(results.get(name)?.at(-1) ?? 0)} tps`);
      }
    }
    await db.query('DROP TRIGGER IF EXISTS wp_x ON wp.t');
    // no trigger, and a reader decoding the changes from a slot
    await db.query('CREATE PUBLICATION wp_pub FOR TABLE wp.t');
    await db.query("SELECT pg_create_logical_replication_slot('wp_slot', 'pgoutput')");
    let messages = 0;
    try {
      for (let round = 0; round < 2; round++) {
        await db.query(
          "SELECT count(*) FROM pg_logical_slot_get_binary_changes('wp_slot', NULL, NULL, 'proto_version', '1', 'publication_names', 'wp_pub')",
        );
        let stop = false;
        const loop = (async () => {
          while (!stop) {
            const r = await db.query<{ n: number }>(
              "SELECT count(*)::int AS n FROM pg_logical_slot_get_binary_changes('wp_slot', NULL, NULL, 'proto_version', '1', 'publication_names', 'wp_pub')",
            );
            messages += r.rows[0]?.n ?? 0;
            await new Promise((z) => setTimeout(z, 200));
          }
        })();
        add('no trigger, a logical decoding reader', await tps());
        stop = true;
        await loop;
        log(`writepath: a logical decoding reader: ${Math.round(results.get('no trigger, a logical decoding reader')?.at(-1) ?? 0)} tps`);
      }
    } finally {
      await db.query("SELECT pg_drop_replication_slot('wp_slot')").catch(() => {});
      await db.query('DROP PUBLICATION IF EXISTS wp_pub');
    }
    log(`writepath: the reader decoded ${messages} messages (begin, update, commit per transaction)`);
    const base = mean(results.get('no trigger') ?? []);
    return [...VARIANTS.map(([n]) => n), 'no trigger, a logical decoding reader'].map((name) => ({
      measure: `single-row updates, 4 clients: ${name}`,
      baseline: 'no trigger',
      baselineValue: base,
      value: mean(results.get(name) ?? []),
      unit: 'tps',
      kind: 'info' as const,
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await db.query('DROP SCHEMA wp CASCADE');
  }
}
