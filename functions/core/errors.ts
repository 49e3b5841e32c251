// Named errors. Their `name` is an interface: the CLI maps every SyncGuardError to exit code 2
// with its message on one line, and Step Functions Retry/Catch (infra/) match on these names.
// Keep the set small and stable.

export class SyncGuardError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SyncGuardError';
  }
}

/** Bad input from the user: a malformed name, option or configuration. Nothing was changed. */
export class InputError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'InputError';
  }
}

/** A database could not be reached or refused the login. */
export class ConnectionError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ConnectionError';
  }
}

/** The databases do not allow the operation: a server too old, a missing table or key, schema drift. */
export class IncompatibleError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'IncompatibleError';
  }
}

/** A drain stopped on an error (the summary says which); its completed batches stand. */
export class DrainError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DrainError';
  }
}

/** The time given to an operation was too short to start it. Nothing was changed; give it more time. */
export class TimeLimitError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TimeLimitError';
  }
}

/** A plan's time ran out before it was applied. Inspect again and make a new plan. */
export class PlanExpiredError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PlanExpiredError';
  }
}

/** A plan was not approved (yet). Approve it, or make a new one. */
export class PlanNotApprovedError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PlanNotApprovedError';
  }
}

/** A plan was rejected; it can never be applied. */
export class PlanRejectedError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PlanRejectedError';
  }
}

/** A plan's content no longer matches its checksum, or the checksum that was approved. */
export class PlanTamperedError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PlanTamperedError';
  }
}

/** A plan was already applied (or decided): applying or deciding it again changes nothing. */
export class PlanAlreadyAppliedError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PlanAlreadyAppliedError';
  }
}

/**
 * Another run holds the plan's claim: its lease has not ended, or the plan cannot be taken over
 * from it yet. The message names the run, its login and when its lease ends.
 */
export class PlanClaimedError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PlanClaimedError';
  }
}

/** A plan would change more rows than the cap allows. */
export class PlanTooLargeError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PlanTooLargeError';
  }
}

/** Four-eyes approval is on and the approver made the plan. */
export class FourEyesError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FourEyesError';
  }
}

/** The table's registration changed since the plan was made (unregistered, or registered again). */
export class PlanStaleError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PlanStaleError';
  }
}

/** No planned change could be applied: every row changed since inspection. Inspect again. */
export class PreconditionFailedError extends SyncGuardError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PreconditionFailedError';
  }
}

/** Every error name a workflow may route on (Step Functions Catch/Retry in infra/ use these). */
export const ERROR_NAMES = Object.freeze({
  SyncGuardError: 'SyncGuardError',
  InputError: 'InputError',
  ConnectionError: 'ConnectionError',
  IncompatibleError: 'IncompatibleError',
  DrainError: 'DrainError',
  TimeLimitError: 'TimeLimitError',
  PlanExpiredError: 'PlanExpiredError',
  PlanNotApprovedError: 'PlanNotApprovedError',
  PlanRejectedError: 'PlanRejectedError',
  PlanTamperedError: 'PlanTamperedError',
  PlanAlreadyAppliedError: 'PlanAlreadyAppliedError',
  PlanClaimedError: 'PlanClaimedError',
  PlanTooLargeError: 'PlanTooLargeError',
  FourEyesError: 'FourEyesError',
  PlanStaleError: 'PlanStaleError',
  PreconditionFailedError: 'PreconditionFailedError',
} as const);

/** Errors worth retrying as they are: the database was unreachable, or the time ran out. */
export const RETRYABLE_ERRORS: readonly string[] = Object.freeze([ERROR_NAMES.ConnectionError, ERROR_NAMES.TimeLimitError]);
