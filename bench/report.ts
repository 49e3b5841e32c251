// The benchmark's one table: each row a measure with syncguard, its baseline from the same run,
// the ratio, and the target it is held to.

export interface Row {
  readonly measure: string;
  readonly baseline: string;
  readonly baselineValue: number;
  readonly value: number;
  readonly unit: string;
  /** 'max' when the ratio must stay at or below the target, 'min' when at or above. */
  readonly kind: 'max' | 'min' | 'info';
  readonly target?: number;
}

const num = (v: number): string => (v >= 1000 ? Math.round(v).toLocaleString('en-US') : v >= 10 ? v.toFixed(1) : v.toFixed(3));

export function ratio(r: Row): number {
  return r.value / r.baselineValue;
}

export function verdict(r: Row): string {
  if (r.kind === 'info' || r.target === undefined) return '';
  const ok = r.kind === 'max' ? ratio(r) <= r.target : ratio(r) >= r.target;
  return ok ? 'met' : 'MISSED';
}

/** A Markdown table (it is also what docs/performance.md holds). */
export function markdown(rows: readonly Row[]): string {
  const head = ['measure', 'baseline (same run)', 'baseline', 'syncguard', 'ratio', 'target', ''];
  const lines = rows.map((r) => [
    r.measure,
    r.baseline,
    `${num(r.baselineValue)} ${r.unit}`,
    `${num(r.value)} ${r.unit}`,
    `${ratio(r).toFixed(2)}x`,
    r.target === undefined ? '' : `${r.kind === 'max' ? '<=' : '>='} ${r.target}x`,
    verdict(r),
  ]);
  const all = [head, head.map(() => '---'), ...lines];
  return all.map((l) => `| ${l.join(' | ')} |`).join('\n');
}
