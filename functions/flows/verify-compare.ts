// Step 6 of a verification (flows/verify.ts): with both snapshots open, compare each table's
// catalogues, totals first, then level by level only where they differ (core/verify-levels.ts),
// then the detail of the buckets that differ, and sort what is left to do: a probe request for
// each table probes can reach, the first round's candidates for the others.

import { compareTable, type TableComparison } from '../core/compare.js';
import type { TableRef } from '../core/identifiers.js';
import { type TableReport, tableReport, uncomparable } from '../core/report.js';
import { findDifferingBuckets, meanRowsPerBucket } from '../core/verify-levels.js';
import { probeTargets, whyNotCompared } from '../core/verify-plan.js';
import { localWriteText } from '../core/verify-report.js';
import { readDetail, readLevel, type TableSnapshot } from '../db/catalogue.js';
import type { Client } from '../db/connect.js';
import type { TableStatus } from '../db/status.js';
import type { ProbeRequest } from './probes.js';
import type { FirstRound } from './verify-rounds.js';

/** A probed table waiting for its probes' answers. */
export interface PendingTable {
  readonly cmp: TableComparison;
  readonly equalBuckets: number;
  readonly fingerprints: TableReport['fingerprints'];
  readonly localWrites: ReadonlySet<string>;
}

export interface Compared {
  /** Reports of the tables settled here (uncomparable, or compared by the fallback's first round). */
  readonly reports: TableReport[];
  readonly requests: ProbeRequest[];
  readonly pending: Map<TableRef, PendingTable>;
  /** The fallback's first-round candidates, per table. */
  readonly first: FirstRound[];
  readonly blocked: string[];
  /** The publisher's bucket generations of the detail read, per table (for the fallback's round two). */
  readonly generations: Map<TableRef, ReadonlyMap<string, string>>;
}

/** A side with no detail read (every range was equal). */
const NO_DETAIL = (fingerprint: string) => ({ fingerprint, swept: true, buckets: new Map(), dirty: new Set<string>() });

export async function compareCatalogues(
  pub: Client,
  sub: Client,
  input: {
    tables: readonly TableRef[];
    /** Each side's catalogue overview, by table name (as the nodes report it). */
    pubRanges: ReadonlyMap<string, TableSnapshot>;
    subRanges: ReadonlyMap<string, TableSnapshot>;
    /** Why a table cannot be compared (problems found after the drains, no barrier). */
    problems: (table: TableRef) => readonly string[];
    /** The subscription probes travel in, for the tables they can reach. */
    probeable: ReadonlyMap<TableRef, string>;
    pubStatus: readonly TableStatus[];
  },
): Promise<Compared> {
  const out: Compared = { reports: [], requests: [], pending: new Map(), first: [], blocked: [], generations: new Map() };
  for (const t of input.tables) {
    const table = t.text;
    const pt = input.pubRanges.get(table);
    const st = input.subRanges.get(table);
    const fingerprints = { publisher: pt?.fingerprint ?? null, subscriber: st?.fingerprint ?? null };
    const why = whyNotCompared(pt, st, input.problems(t));
    if (why !== null || pt === undefined || st === undefined) {
      const known = pt === undefined ? 0 : pt.totals.buckets + pt.dirty.size;
      out.reports.push(uncomparable(table, why ?? '', fingerprints, known));
      continue;
    }
    const { buckets: inspect, equalBuckets } = await differingBuckets(pub, sub, t, pt, st);
    const pd = inspect.length > 0 ? await readDetail(pub, t, inspect) : null;
    const sd = inspect.length > 0 ? await readDetail(sub, t, inspect) : null;
    const cmp = pd !== null && sd !== null ? compareTable(pd, sd) : compareTable(NO_DETAIL(pt.fingerprint), NO_DETAIL(st.fingerprint));
    if (pd !== null) out.generations.set(t, pd.generations);
    const subscription = input.probeable.get(t);
    if (subscription !== undefined) {
      const rowsOf = (b: string) => ({ publisher: pd?.buckets.get(b)?.rows ?? null, subscriber: sd?.buckets.get(b)?.rows ?? null });
      const targets = probeTargets(cmp, rowsOf, meanRowsPerBucket(pt.totals));
      const status = input.pubStatus.find((x) => x.table === table);
      if (targets.length > 0) {
        const scheme = (status?.scheme ?? 'int') as ProbeRequest['scheme'];
        out.requests.push({ table: t, scheme, subscription, targets, tableRows: status?.rows ?? 0 });
      }
      out.pending.set(t, { cmp, equalBuckets, fingerprints, localWrites: st.localWrites });
      continue;
    }
    out.reports.push(tableReport(table, fingerprints, [cmp], equalBuckets));
    const hidden = [...st.localWrites].filter((b) => cmp.skippedBuckets.has(b));
    if (hidden.length > 0) out.blocked.push(localWriteText(table, hidden, 'could not be compared (still dirty)'));
    if (cmp.mismatches.length > 0) out.first.push({ table: t, first: cmp.mismatches });
  }
  return out;
}

/** The buckets whose detail must be read (core/verify-levels.ts), reading each level from both nodes. */
function differingBuckets(pub: Client, sub: Client, t: TableRef, pt: TableSnapshot, st: TableSnapshot) {
  return findDifferingBuckets(pt, st, async (width, parents) => ({
    publisher: await readLevel(pub, t, width, parents),
    subscriber: await readLevel(sub, t, width, parents),
  }));
}
