// Package workers holds auditworker's River jobs, one file per job kind:
// each defines its JobArgs (Kind, InsertOpts), a worker embedding
// river.WorkerDefaults, and the work itself as a plain method of Deps so
// that tests and the CLI can run it without a queue. Every job is idempotent
// and safe to retry: it re-reads the database's state instead of trusting
// what an earlier attempt may have done.
//
// The jobs: partitions (PartitionsArgs: months ahead, default partition
// rescued), seal (SealArgs: HMAC checkpoints, INTEGRITY.md) and verify
// (VerifyArgs: incremental, or full).
//
// NewSuite builds the River client (schema migrate.RiverSchema, queue
// Queue) with every job of jobKinds, the single registration point: adding
// a job kind is a line there, a field for its interval in SuiteConfig (and
// its default in WithDefaults), and a flag in cmd/auditworker/run.go. Only
// River's elected leader enqueues periodic jobs, and each is unique per
// period, so replicas run each once per interval. A Suite also serves
// /healthz, /readyz and /metrics (Handler), with its own Prometheus
// registry, so that suites in one process (tests) do not share metrics.
//
// Alerts raised by jobs (tampering found, a chain head that does not match
// its row) go to Deps.Alerter; the default, LogAlerter, only logs.
package workers
