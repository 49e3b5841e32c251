// npm run demo: the whole loop on this machine, no cloud account. Starts an embedded PostgreSQL 18
// publisher and subscriber with real logical replication, creates sample tables (integer, uuid and
// composite keys), and then drives the real `syncguard` CLI: install, register, drain, verify
// (in sync) while an application keeps writing, a few divergences injected on the subscriber,
// verify again (exactly those buckets, confirmed by probes while the writes go on), then inspect
// a bucket, plan, approve and repair each divergence through the subscription, and verify in
// sync. It ends with a summary: rows checked, buckets, time per step, divergences found and repaired.
// Everything it started is stopped and its data removed at the end, also on failure or Ctrl-C.

import { run } from '../cli/main.js';
import { type Cluster, startCluster } from '../dev/cluster.js';
import { createPair, type Pair } from '../dev/pair.js';

const say = (s: string) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);

/** Lines the last command printed (the demo reads plan ids and buckets from them). */
let printed: string[] = [];
const steps: { step: string; ms: number }[] = [];

async function syncguard(...args: string[]): Promise<number> {
  const shown = args.map((a) => (a.startsWith('postgres://') ? a.replace(/:[^:@/]+@/, ':***@') : a)).join(' ');
  process.stdout.write(`$ syncguard ${shown}\n`);
  printed = [];
  const t0 = Date.now();
  const code = await run(['node', 'syncguard', ...args], (l) => {
    printed.push(l);
    process.stdout.write(`${l}\n`);
  });
  steps.push({ step: args[0] === 'drain' ? 'drain (one node)' : (args[0] ?? ''), ms: Date.now() - t0 });
  return code;
}

async function main(): Promise<void> {
  const clusters: Cluster[] = [];
  let pair: Pair | undefined;
  const stop = async () => {
    await pair?.dispose().catch(() => {});
    pair = undefined;
    for (const c of clusters.splice(0)) await c.stop();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    say('starting an embedded PostgreSQL 18 publisher and subscriber');
    clusters.push(await startCluster('demo-publisher'), await startCluster('demo-subscriber'));
    pair = await createPair(clusters[0] as Cluster, clusters[1] as Cluster, 'demo');
    const p = pair;
    await p.both(`
      CREATE TABLE public.orders (id bigint PRIMARY KEY, customer uuid NOT NULL, total numeric(12,2), placed timestamptz, note text);
      CREATE TABLE public.customers (id uuid PRIMARY KEY, name text NOT NULL, email text, tags text[]);
      CREATE TABLE public.order_lines (order_id bigint, line int, sku text, qty int, PRIMARY KEY (order_id, line));`);
    await p.pub.query(`
      INSERT INTO public.customers SELECT md5('c' || i)::uuid, 'Customer ' || i, 'c' || i || '@example.com', ARRAY['demo'] FROM generate_series(1, 5000) i;
      INSERT INTO public.orders SELECT i, md5('c' || (1 + i % 5000))::uuid, (i % 997) * 1.25, timestamptz '2026-01-01' + i * interval '1 minute', NULL FROM generate_series(1, 50000) i;
      INSERT INTO public.order_lines SELECT i / 3, i % 3, 'SKU-' || (i % 250), 1 + i % 4 FROM generate_series(3, 150000) i;`);
    await p.subscribe(['public.orders', 'public.customers', 'public.order_lines']);
    process.stdout.write('replicating 3 tables (50,000 orders, 5,000 customers, 150,000 order lines)\n');

    const pairArgs = ['--publisher-dsn', p.publisherDsn, '--subscriber-dsn', p.subscriberDsn];
    say('install the syncguard schema on both nodes and register the tables');
    await syncguard('install', ...pairArgs);
    for (const t of ['public.orders', 'public.customers', 'public.order_lines']) await syncguard('register', ...pairArgs, '--table', t);

    say('let probes travel with the tables: the two statements register printed, run as the owner of the publication and subscription');
    const addProbe = `ALTER PUBLICATION ${p.name} ADD TABLE syncguard.probe`;
    const refresh = `ALTER SUBSCRIPTION ${p.name} REFRESH PUBLICATION WITH (copy_data = false)`;
    process.stdout.write(`publisher: ${addProbe}\nsubscriber: ${refresh}\n`);
    await p.pub.query(addProbe);
    await p.sub.query(refresh);

    say('compute the bucket hashes on both nodes (what the drain Lambda does on a schedule)');
    await syncguard('drain', '--dsn', p.publisherDsn, '--max-seconds', '60');
    await syncguard('drain', '--dsn', p.subscriberDsn, '--max-seconds', '60');

    say("verify while the application writes 200 transactions/s: the subscriber holds exactly the publisher's data");
    const app = await p.ownerClient('publisher');
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        await app.query('UPDATE public.orders SET total = total + 1, placed = now() WHERE id = $1', [1 + ((i * 7919) % 50000)]);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const first = await syncguard('verify', ...pairArgs);
    process.stdout.write(`exit code ${first}\n`);

    say('inject drift on the subscriber: a changed total, a deleted customer, an extra order line');
    await p.sub.query(
      "UPDATE public.orders SET total = total + 0.01 WHERE id = 4242; DELETE FROM public.customers WHERE name = 'Customer 777'",
    );
    await p.sub.query("INSERT INTO public.order_lines VALUES (31337, 9, 'SKU-X', 1)");
    process.stdout.write('(3 statements run directly on the subscriber; replication will never undo them)\n');

    say('verify again, the writes still going on: exactly those buckets, each confirmed by a probe');
    const second = await syncguard('verify', ...pairArgs);
    process.stdout.write(`exit code ${second}\n`);
    const diverged = printed.flatMap((l) => {
      const m = /^ {2}mismatch (\S+) bucket (-?\d+):/.exec(l);
      return m === null ? [] : [{ table: m[1] as string, bucket: m[2] as string }];
    });

    say('inspect one diverged bucket: the rows behind it, both sides read at one replication position');
    const first3 = diverged[0] ?? { table: 'public.orders', bucket: '0' };
    await syncguard('inspect', ...pairArgs, '--table', first3.table, '--bucket', first3.bucket);

    say('plan, approve and repair each diverged bucket (recorded in a control-plane database)');
    await p.pub.query(`CREATE DATABASE ${p.name}_ctl OWNER sg_owner`);
    const control = ['--control-dsn', p.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl')];
    await syncguard('install', ...control);
    let repaired = 0;
    for (const d of diverged) {
      await syncguard('plan', ...pairArgs, ...control, '--table', d.table, '--bucket', d.bucket);
      const id = /stored as plan (\d+)/.exec(printed.at(-1) ?? '')?.[1];
      if (id === undefined) throw new Error(`no plan stored for ${d.table} bucket ${d.bucket}`);
      await syncguard('approve', ...control, '--plan', id, '--comment', 'reviewed in the demo');
      if ((await syncguard('repair', ...pairArgs, ...control, '--plan', id)) === 0) repaired++;
    }

    say('verify once more, the writes still going on: in sync');
    const third = await syncguard('verify', ...pairArgs);
    process.stdout.write(`exit code ${third}\n`);
    writing = false;
    await writer;
    await app.close();
    if (first !== 0 || second !== 1 || third !== 0 || repaired !== diverged.length) {
      throw new Error(
        `unexpected results: verify ${first}, ${second}, ${third} (expected 0, 1, 0); repaired ${repaired} of ${diverged.length}`,
      );
    }

    say('summary');
    const rows = await p.pub.query<{ n: string }>(
      'SELECT (SELECT count(*) FROM public.orders) + (SELECT count(*) FROM public.customers) + (SELECT count(*) FROM public.order_lines) AS n',
    );
    const buckets = await p.pub.query<{ n: string }>('SELECT count(*) AS n FROM syncguard.bucket');
    const perStep = new Map<string, { n: number; ms: number }>();
    for (const st of steps) perStep.set(st.step, { n: (perStep.get(st.step)?.n ?? 0) + 1, ms: (perStep.get(st.step)?.ms ?? 0) + st.ms });
    process.stdout.write(`rows checked on each side   ${Number(rows.rows[0]?.n).toLocaleString('en-US')} in 3 tables\n`);
    process.stdout.write(`buckets                     ${buckets.rows[0]?.n}\n`);
    process.stdout.write(`divergences found/repaired  ${diverged.length} / ${repaired}\n`);
    for (const [step, v] of perStep) process.stdout.write(`${`${step} (x${v.n})`.padEnd(28)}${(v.ms / v.n / 1000).toFixed(2)} s each\n`);
  } finally {
    say('stopping both servers and removing their data');
    await stop();
  }
  process.stdout.write('done\n');
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
