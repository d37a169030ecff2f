package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// readmeInsert is the README's first INSERT, as written there.
const readmeInsert = `INSERT INTO audit_log ("timestamp", action, status, principal_id, target_resource_type,
                       target_resource_id, data_classification, details)
VALUES (now(), 'fhir.patient.read', 'success', 'dr-123', 'Patient', 'patient-456', 'PHI',
        '{"department": "cardiology"}')
RETURNING id, chain_id, chain_seq, hash`

// A new deploy: migrate alone creates the partitions a writer needs, the
// README's INSERT lands in this month's partition, and neither the
// partitions job's first run nor the alert evaluator finds anything to say
// about the deploy itself.
func TestFirstDeployIsQuiet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewEmptyDB(t)
	res, err := migrate.Migrate(ctx, db.Pool, migrate.Options{})
	require.NoError(t, err)
	require.Len(t, res.Partitions, migrate.MonthsAheadDefault+1, "this month and the months ahead")
	now := time.Now().UTC()
	require.Equal(t, "audit_log_"+now.Format("2006_01"), res.Partitions[0])

	var id, seq int64
	var chain int16
	var hash string
	require.NoError(t, db.Pool.QueryRow(ctx, readmeInsert).Scan(&id, &chain, &seq, &hash))
	var where string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM audit.audit_log WHERE id = $1`, id).Scan(&where))
	require.Equal(t, "audit.audit_log_"+now.Format("2006_01"), where)

	// the worker's first start: the partitions job has nothing to do
	d := &workers.Deps{Pool: db.Pool}
	changes, err := d.MaintainPartitions(ctx, workers.MonthsAheadDefault)
	require.NoError(t, err)
	require.Empty(t, changes)
	conds, err := monitor.EvaluateAlerts(ctx, db.Pool, monitor.AlertConfig{})
	require.NoError(t, err)
	for _, c := range conds {
		require.NotContains(t, []string{monitor.AlertDefaultPartitionRows, monitor.AlertPartitionsAhead,
			monitor.AlertSealLag, monitor.AlertIntegrityTampered, monitor.AlertVerificationFailed}, c.Kind,
			"a fresh deploy raised %s: %s", c.Kind, c.Message)
	}
	// migrate again creates nothing
	res, err = migrate.Migrate(ctx, db.Pool, migrate.Options{})
	require.NoError(t, err)
	require.Empty(t, res.Partitions)
}

// The partitions job and a reader of the log (the seal, a verification)
// deadlocked: the job moved rows out of the default partition (locking it)
// and then created the months ahead with CREATE TABLE ... PARTITION OF,
// which wants ACCESS EXCLUSIVE on audit_log, while the reader held audit_log
// (ACCESS SHARE, taken first by every query) and waited for the default
// partition. The job now locks the parent first and never more than SHARE
// UPDATE EXCLUSIVE on it. This test holds a reader's lock on audit_log,
// runs the job with rows to rescue and months to create, and then reads
// the whole log in the same transaction: before the fix PostgreSQL's
// deadlock detector killed one of them (40P01).
func TestPartitionsJobDoesNotDeadlockWithReaders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	// Rows of a month without a partition: four months ahead (the
	// template has three), so the job moves them before it creates the
	// months after; and an old month the rescue moves.
	now := time.Now().UTC()
	ahead := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 4, 0)
	for _, month := range []time.Time{ahead, time.Date(2019, 5, 1, 0, 0, 0, 0, time.UTC)} {
		_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status)
			SELECT $1::timestamptz + g * interval '1 minute', 'late', 'success' FROM generate_series(1, 100) g`, month)
		require.NoError(t, err)
	}
	insertN(t, db.Pool, 20)

	reader, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer reader.Rollback(ctx)
	var pid int32
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT 1`).Scan(new(int))) // warm the pool
	// ONLY: the parent's lock and no partition's, as a query holds it
	// between locking the parent and its partitions
	_, err = reader.Exec(ctx, `LOCK TABLE ONLY audit.audit_log IN ACCESS SHARE MODE`)
	require.NoError(t, err)

	job := make(chan error, 1)
	jobConn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer jobConn.Release()
	require.NoError(t, jobConn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
	go func() {
		d := &workers.Deps{Pool: db.Pool}
		_, err := d.MaintainPartitions(ctx, 6) // 6 > the template's 3: months to create
		job <- err
	}()
	// wait until the job has finished or is waiting for a lock
	deadline := time.Now().Add(30 * time.Second)
	var jobErr error
	done, finished := false, false
	for !done && time.Now().Before(deadline) {
		select {
		case jobErr = <-job:
			done, finished = true, true
		case <-time.After(20 * time.Millisecond):
			var waiting bool
			require.NoError(t, jobConn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
				WHERE NOT l.granted AND a.datname = current_database() AND a.pid <> pg_backend_pid())`).Scan(&waiting))
			if waiting {
				done = true
			}
		}
	}
	// the reader now reads every partition
	var n int64
	readErr := reader.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log`).Scan(&n)
	if readErr == nil {
		readErr = reader.Commit(ctx)
	}
	if !finished {
		select {
		case jobErr = <-job:
		case <-time.After(30 * time.Second):
			jobErr = errors.New("the partitions job did not finish")
		}
	}
	require.NoError(t, readErr, "the reader")
	require.NoError(t, jobErr, "the partitions job")
	require.EqualValues(t, 220, n)

	var inDefault int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log_default`).Scan(&inDefault))
	require.Zero(t, inDefault)
	var parts int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.partitions() WHERE partition_name IN ('audit_log_2019_05', $1)`, "audit_log_"+ahead.Format("2006_01")).Scan(&parts))
	require.Equal(t, 2, parts)
	requireIntact(t, db.Pool)
}
