// Every time default and margin syncguard uses, named once (milliseconds unless the name says
// otherwise). Pure: no clock here; db/deadline.ts turns these into deadlines at the entry points.

export const TIME = Object.freeze({
  /** The time limit of verify, inspect and a repair when none is given. */
  defaultLimitMs: 60_000,
  /** The least time limit verify accepts; the CLI and the Lambdas give a late start at least this. */
  minLimitMs: 1000,
  /** How long past its time limit a verification may take (its last answer and the report). */
  verifyGraceMs: 2000,
  /** The longest the closing ROLLBACK of a snapshot may wait (a frozen node never answers it). */
  rollbackWaitMs: 1000,
  /** How verify splits its time limit (core/verify-plan.ts): each drain's and the barrier's longest share. */
  verifyDrainMaxMs: 10_000,
  verifyBarrierMaxMs: 30_000,
  /** The margin verify keeps free at the end for the report: 5 % of the limit, between these. */
  verifyMinMarginMs: 100,
  verifyMaxMarginMs: 2000,
  /** Time kept back from sending probes for their answers to arrive. */
  answerReserveMs: 2000,

  /** Kept free after verify in the verify Lambda, for recording the run and returning. */
  lambdaVerifyMarginMs: 3000,
  /** The least time the verify Lambda must have left after its margin. */
  lambdaVerifyMinMs: 5000,
  /** Kept free after the work in the inspect and repair Lambdas, for storing and returning. */
  lambdaMarginMs: 3000,

  /** The longest a connection attempt may take, within a command's deadline. */
  connectTimeoutMs: 10_000,
  /** How long a goodbye may take before the socket is simply closed. */
  closeWaitMs: 250,
  /** The session's lock_timeout unless a caller sets its own. */
  sessionLockTimeoutMs: 10_000,
  /** The session's idle_in_transaction_session_timeout. */
  idleInTransactionMs: 60_000,
  /** TCP keepalive's first probe after this much silence. */
  keepAliveDelayMs: 10_000,
  /** PostgreSQL's timeouts are int milliseconds. */
  maxServerTimeoutMs: 2_147_483_647,

  /** How long past its box a drain's query may take before the client gives up on the server. */
  drainClientGraceMs: 2000,
  /** The least client-side timeout a drain's query gets. */
  drainMinQueryTimeoutMs: 1000,
  /** How long past its box the drain command may take: its last batch's answer and the final status. */
  drainGraceMs: 2000,
  /** How long a drain waits when every unfinished sweep is held by other workers. */
  drainBusyWaitMs: 20,
  /** The drain box's safety margin: 10 % of the box, between these. */
  drainMinMarginMs: 50,
  drainMaxMarginMs: 2000,
  /** The least statement_timeout of a drain's final status read. */
  drainFinalStatusMs: 250,
  /** A drain re-sweeps every table when the last full sweep began longer ago than this. */
  resweepIntervalMs: 24 * 3600 * 1000,

  /** status's default time limit, in seconds (connecting included), as the CLI option takes it. */
  statusLimitSeconds: 5,
});
