// npm run demo: the whole loop on this machine, no cloud account. Starts an embedded PostgreSQL 18
// publisher and subscriber with real logical replication, creates sample tables (integer, uuid and
// composite keys), and then drives the real `syncguard` CLI: install, register, drain, verify
// (in sync) while an application keeps writing, a few divergences injected on the subscriber,
// verify again (exactly those buckets, confirmed by probes while the writes go on).
// Everything it started is stopped and its data removed at the end, also on failure or Ctrl-C.

import { run } from '../cli/main.js';
import { type Cluster, startCluster } from '../dev/cluster.js';
import { createPair, type Pair } from '../dev/pair.js';

const say = (s: string) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);

async function syncguard(...args: string[]): Promise<number> {
  const shown = args.map((a) => (a.startsWith('postgres://') ? a.replace(/:[^:@/]+@/, ':***@') : a)).join(' ');
  process.stdout.write(`$ syncguard ${shown}\n`);
  return run(['node', 'syncguard', ...args]);
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
    writing = false;
    await writer;
    await app.end();
    if (first !== 0 || second !== 1) throw new Error(`unexpected verify results: ${first}, ${second} (expected 0 and 1)`);
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
