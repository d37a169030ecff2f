package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/internal/verifier"
)

// migrateSafetyFlags are migrate's production safety flags: verification
// before and after, and the lock settings of every step.
func migrateSafetyFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.BoolFlag{Name: "verify", Usage: "verify the log before migrating (refusing a log that is not intact) and again after", EnvVars: []string{"AUDIT_MIGRATE_VERIFY"}},
		&cli.BoolFlag{Name: "allow-tampered", Usage: "with --verify: migrate even when the log is not intact", EnvVars: []string{"AUDIT_MIGRATE_ALLOW_TAMPERED"}},
		&cli.DurationFlag{Name: "lock-timeout", Value: migrate.LockTimeoutDefault, Usage: "longest wait of a step's statement for a lock, then the step is rolled back and retried", EnvVars: []string{"AUDIT_MIGRATE_LOCK_TIMEOUT"}},
		&cli.IntFlag{Name: "lock-retries", Value: migrate.LockRetriesDefault, Usage: "retries of a step that hit --lock-timeout, with a backoff doubling from 1s", EnvVars: []string{"AUDIT_MIGRATE_LOCK_RETRIES"}},
	}, sealKeyFlags()...)
}

// migrateLockOptions fills opts' lock fields from the flags.
func migrateLockOptions(c *cli.Context, opts *migrate.Options) error {
	if c.Duration("lock-timeout") <= 0 {
		return fmt.Errorf("lock-timeout: must be positive")
	}
	if c.Int("lock-retries") < 0 {
		return fmt.Errorf("lock-retries: must not be negative")
	}
	opts.LockTimeout = c.Duration("lock-timeout")
	opts.LockRetries = c.Int("lock-retries")
	if c.Int("lock-retries") == 0 {
		opts.LockRetries = -1 // the flag's 0 means none; Options' 0 means the default
	}
	opts.OnLockRetry = func(step, attempt int, wait time.Duration) {
		fmt.Fprintf(c.App.ErrWriter, "migrate: step %04d waited lock_timeout for a lock; retry %d in %s\n", step, attempt, wait)
	}
	return nil
}

// verifyBeforeMigrate runs a verification (not recorded: the schema may be
// older than the verifier's record) when the log exists; an error when it
// is not intact, unless --allow-tampered.
func verifyBeforeMigrate(c *cli.Context, pool *pgxpool.Pool) error {
	if !c.Bool("verify") {
		if c.Bool("allow-tampered") {
			return fmt.Errorf("allow-tampered: only with --verify")
		}
		return nil
	}
	var installed bool
	if err := pool.QueryRow(c.Context, `SELECT to_regclass('audit.schema_migrations') IS NOT NULL`).Scan(&installed); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if !installed {
		fmt.Fprintln(c.App.ErrWriter, "migrate: verify before: nothing installed yet, nothing to verify")
		return nil
	}
	rep, err := migrateVerify(c, pool, true)
	if err != nil {
		return fmt.Errorf("verify before migrating: %w", err)
	}
	fmt.Fprintf(c.App.ErrWriter, "migrate: verify before: %s\n", verifySummary(rep))
	if !rep.Intact() {
		if !c.Bool("allow-tampered") {
			return fmt.Errorf("verify: the audit log is not intact (%s): refusing to migrate; investigate with `auditworker verify`, or pass --allow-tampered", verifySummary(rep))
		}
		fmt.Fprintln(c.App.ErrWriter, "migrate: the log is not intact; migrating anyway (--allow-tampered)")
	}
	return nil
}

// verifyAfterMigrate runs and records a verification after the steps;
// errTampered (exit 2) when the log is not intact.
func verifyAfterMigrate(c *cli.Context, pool *pgxpool.Pool) error {
	if !c.Bool("verify") {
		return nil
	}
	rep, err := migrateVerify(c, pool, false)
	if err != nil {
		return fmt.Errorf("verify after migrating: %w", err)
	}
	fmt.Fprintf(c.App.ErrWriter, "migrate: verify after: %s (run %d)\n", verifySummary(rep), rep.RunID)
	if !rep.Intact() {
		return errTampered
	}
	return nil
}

func migrateVerify(c *cli.Context, pool *pgxpool.Pool, noRecord bool) (*integrity.Report, error) {
	keys, err := optionalSealKeys(c)
	if err != nil {
		return nil, err
	}
	opts := verifier.Options{NoRecord: noRecord}
	if keys != nil {
		opts.Keys = keys.Ring
	}
	return runVerify(c, pool, opts)
}

// verifySummary is one line: the status, rows, and findings by kind.
func verifySummary(rep *integrity.Report) string {
	kinds := map[integrity.Kind]int{}
	for _, f := range rep.Findings {
		kinds[f.Kind]++
	}
	parts := []string{}
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, kinds[k]))
	}
	s := fmt.Sprintf("%s, %d rows, %d findings", rep.Status, rep.RowsChecked, len(rep.Findings))
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return s
}
