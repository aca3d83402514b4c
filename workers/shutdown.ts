/** The abort reason a worker gives its running jobs when it shuts down (vs. a user's cancel). */
export const SHUTDOWN_REASON = 'graft:worker-shutdown';
/** The abort reason when the worker could not renew a job's lock: another worker may own it now. */
export const LOCK_LOST_REASON = 'graft:lock-lost';
