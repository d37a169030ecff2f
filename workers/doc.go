// Package workers holds auditworker's River jobs, one file per job kind:
// each defines its JobArgs (Kind, InsertOpts), a worker embedding
// river.WorkerDefaults, and the work itself as a plain function of Deps so
// that tests and the CLI can run it without a queue. Every job is idempotent
// and safe to retry: it re-reads the database's state instead of trusting
// what an earlier attempt may have done.
package workers
