import pg from 'pg';
import { startCluster, superuserDsn } from '../dev/cluster.js';
import { installSchema } from '../functions/db/install.js';

const N = 300000;
const c0 = await startCluster('trig', 18, { fsync: null, full_page_writes: null });
try {
  const c = new pg.Client({ connectionString: superuserDsn(c0) });
  await c.connect();
  await installSchema(c as never);
  await c.query(
    'CREATE TABLE plain (id int PRIMARY KEY, v text); CREATE TABLE newt (id int PRIMARY KEY, v text); CREATE TABLE oldt (id int PRIMARY KEY, v text)',
  );
  const cfg = (t: string) =>
    JSON.stringify({
      schema: 'public',
      table: t,
      keyColumns: ['id'],
      keyTypes: ['integer'],
      scheme: 'int',
      bucketWidth: 1000,
      columns: ['id', 'v'],
      columnTypes: ['integer', 'text'],
      hashVersion: 1,
      fingerprint: 'x',
    });
  await c.query("SELECT syncguard.register_table($1, 'subscriber')", [cfg('newt')]);
  // the pre-issue-7 subscriber trigger, for comparison
  await c.query(`CREATE FUNCTION public.old_mark() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE sg_m pg_catalog.text;
BEGIN
  IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN
    sg_m := (CASE WHEN NEW.id::pg_catalog.int8 OPERATOR(pg_catalog.>=) 0 THEN NEW.id::pg_catalog.int8 OPERATOR(pg_catalog./) 1000 ELSE (NEW.id::pg_catalog.int8 OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog./) 1000 OPERATOR(pg_catalog.-) 1 END)::pg_catalog.text;
    IF pg_catalog.current_setting('syncguard.mark_old', true) IS DISTINCT FROM sg_m THEN
      INSERT INTO syncguard.dirty (reg_id, bucket, xid) VALUES (999, sg_m::pg_catalog.int8, pg_catalog.pg_current_xact_id()) ON CONFLICT DO NOTHING;
      PERFORM pg_catalog.set_config('syncguard.mark_old', sg_m, true);
    END IF;
  END IF;
  RETURN NULL;
END$f$;
CREATE TRIGGER t AFTER INSERT ON oldt FOR EACH ROW EXECUTE FUNCTION public.old_mark();
ALTER TABLE oldt ENABLE ALWAYS TRIGGER t;`);
  await c.query('SET session_replication_role = replica');
  const time = async (t: string) => {
    await c.query(`TRUNCATE ${t}`);
    const s = Date.now();
    await c.query(`INSERT INTO ${t} SELECT i, 'v' || i FROM generate_series(1, ${N}) i`);
    return Date.now() - s;
  };
  for (let r = 0; r < 3; r++) {
    const p = await time('plain');
    const o = await time('oldt');
    const n = await time('newt');
    console.log(`plain ${p} ms, old trigger ${o} ms (${(o / p).toFixed(2)}x), new trigger ${n} ms (${(n / p).toFixed(2)}x)`);
  }
  await c.end();
} finally {
  await c0.stop();
}
