/** The abort reason a worker gives its running jobs when it shuts down (vs. a user's cancel). */
export const SHUTDOWN_REASON = 'graft:worker-shutdown';
