// Parity checks (pure), reported beside the data verdict: is each table still published, do the
// columns and their types still match on both sides, and are the subscriber's sequences behind the
// keys replication has written (after a switchover, inserts would then collide).

export interface ParityColumn {
  readonly name: string;
  readonly type: string;
  readonly generated: boolean;
}

export interface ParityInfo {
  readonly table: string;
  readonly exists: boolean;
  readonly hashedColumns?: readonly string[];
  readonly columns?: readonly ParityColumn[];
  /** Publisher only: null when the registration names no publication. */
  readonly published?: boolean | null;
  readonly keyColumn?: string | null;
  readonly maxKey?: string | null;
  readonly sequences?: readonly { readonly column: string; readonly sequence: string; readonly lastValue: string | null }[];
}

export interface Finding {
  readonly table: string;
  readonly level: 'warning' | 'info';
  readonly message: string;
}

export function parityFindings(pub: readonly ParityInfo[], sub: readonly ParityInfo[]): Finding[] {
  const findings: Finding[] = [];
  const subs = new Map(sub.map((s) => [s.table, s]));
  for (const p of pub) {
    const s = subs.get(p.table);
    const warn = (message: string) => findings.push({ table: p.table, level: 'warning', message });
    if (!p.exists) {
      warn('the table no longer exists on the publisher');
      continue;
    }
    if (s === undefined || !s.exists) {
      warn(s === undefined ? 'the table is not registered on the subscriber' : 'the table no longer exists on the subscriber');
      continue;
    }
    if (p.published === false) warn("the table is no longer in the subscription's publications");
    const pc = new Map((p.columns ?? []).map((c) => [c.name, c]));
    const sc = new Map((s.columns ?? []).map((c) => [c.name, c]));
    for (const h of p.hashedColumns ?? []) {
      if (!pc.has(h)) warn(`hashed column ${h} no longer exists on the publisher: re-register the table`);
      else if (!sc.has(h)) warn(`hashed column ${h} no longer exists on the subscriber: re-register the table`);
    }
    for (const [name, c] of pc) {
      const d = sc.get(name);
      if (d === undefined) {
        if (!c.generated) warn(`column ${name} exists on the publisher but not on the subscriber`);
      } else if (d.type !== c.type) {
        warn(`column ${name} is ${c.type} on the publisher and ${d.type} on the subscriber`);
      }
    }
    const extra = [...sc.keys()].filter((n) => !pc.has(n));
    if (extra.length > 0) findings.push({ table: p.table, level: 'info', message: `subscriber-only columns: ${extra.join(', ')}` });
    if (s.maxKey !== null && s.maxKey !== undefined) {
      for (const q of s.sequences ?? []) {
        if (q.column !== s.keyColumn) continue;
        if (q.lastValue === null || BigInt(q.lastValue) < BigInt(s.maxKey)) {
          warn(
            `sequence ${q.sequence} on the subscriber is at ${q.lastValue ?? 'its start'}, behind max(${q.column}) = ${s.maxKey}: inserts there would collide after a switchover`,
          );
        }
      }
    }
  }
  return findings;
}
