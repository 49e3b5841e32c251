// Adaptive batch size for the drain (pt-table-checksum's idea, in buckets): keep a moving
// average of the milliseconds one bucket costs and size each batch so that its statement takes
// about targetMs. One huge bucket or a slow disk then shrinks the next batches instead of
// overrunning the time box; fast, small buckets grow them (at most doubling per batch).

export interface BatchSizerOptions {
  /** Wanted duration of one batch statement. */
  readonly targetMs: number;
  /** Batch size before anything was measured. */
  readonly initial: number;
  readonly min: number;
  readonly max: number;
  /** Weight of the newest measurement in the moving average, in (0, 1]. */
  readonly smoothing: number;
}

export const DEFAULT_BATCH_SIZER: BatchSizerOptions = Object.freeze({ targetMs: 500, initial: 16, min: 1, max: 5000, smoothing: 0.5 });

export class BatchSizer {
  private msPerBucket: number | null = null;
  private last: number;

  constructor(private readonly opts: BatchSizerOptions = DEFAULT_BATCH_SIZER) {
    this.last = opts.initial;
  }

  /** The number of buckets for the next batch. */
  next(): number {
    if (this.msPerBucket === null) return this.last;
    const wanted = Math.floor(this.opts.targetMs / Math.max(this.msPerBucket, 1e-3));
    this.last = Math.max(this.opts.min, Math.min(this.opts.max, wanted, this.last * 2));
    return this.last;
  }

  /** Records a finished batch: how many buckets it recomputed and how long it took. */
  record(buckets: number, elapsedMs: number): void {
    if (buckets <= 0) return;
    const sample = Math.max(elapsedMs, 0) / buckets;
    const a = this.opts.smoothing;
    this.msPerBucket = this.msPerBucket === null ? sample : a * sample + (1 - a) * this.msPerBucket;
  }

  /**
   * The next batch size, shrunk to fit in budgetMs; 0 when not even one bucket is expected to fit.
   * Before the first measurement the batch is the initial size (statement_timeout guards it).
   */
  nextWithin(budgetMs: number): number {
    const size = this.next();
    if (budgetMs <= 0) return 0;
    if (this.msPerBucket === null) return size;
    return Math.min(size, Math.floor(budgetMs / Math.max(this.msPerBucket, 1e-3)));
  }
}
