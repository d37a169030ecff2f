// Package migrate applies auditdb's SQL steps (package auditsql) to a
// database: each step in its own transaction together with the row that
// records it, under an advisory lock so that two migrators never interleave.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	auditsql "github.com/auditdb/auditdb/sql"
)

// lockKey serialises migrators on one database ('audm' as an int4 pair with
// the chain locks' namespace would collide with nothing; kept separate).
const lockKey int64 = 0x6175646d

// ErrInstalledAsExtension is returned when the schema was installed with
// CREATE EXTENSION: upgrades then go through ALTER EXTENSION, not migrations.
var ErrInstalledAsExtension = errors.New("auditdb is installed as an extension (CREATE EXTENSION auditdb): upgrade it with ALTER EXTENSION auditdb UPDATE, not with migrate")

// Result says what a migration did, or would do with DryRun.
type Result struct {
	Applied []Applied `json:"applied"`
	Current int       `json:"current_version"`
	Target  int       `json:"target_version"`
	DryRun  bool      `json:"dry_run"`
	// Trigger is the insert trigger's implementation after the run: "c"
	// (the accelerator) or "plpgsql". Empty in a dry run.
	Trigger string `json:"trigger,omitempty"`
	// River lists the River job-queue migrations applied (or, in a dry run,
	// pending) in schema RiverSchema.
	River []int `json:"river_applied"`
	// Partitions lists the monthly partitions the run created. Empty in a
	// dry run.
	Partitions []string `json:"partitions_created"`
}

// RiverSchema holds River's tables (jobs, leader election, queues), apart
// from the application's own River, if it has one, and from the audit schema
// that writers see.
const RiverSchema = "audit_river"

// Applied is one step run (or, in a dry run, one that would run).
type Applied struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	Path    string `json:"path"`
}

// Options for Migrate. The zero value applies every pending step.
type Options struct {
	// DryRun lists the pending steps without running them.
	DryRun bool
	// TargetVersion stops after this step. Defaults to the newest step (0).
	TargetVersion int
	// Accelerator switches the insert trigger to the C accelerator when the
	// server has it and the caller may create C functions (a superuser);
	// otherwise the PL/pgSQL trigger stays. Defaults to false: PL/pgSQL.
	Accelerator bool
	// MonthsAhead is how many monthly partitions after the current one
	// (UTC) the migration creates, besides the current one, so that the
	// first rows written never land in the default partition; negative
	// creates the current month's only. Defaults to MonthsAheadDefault (3),
	// the worker's.
	MonthsAhead int

	// LockTimeout bounds each statement's wait for a lock during a step
	// (see runStep). Defaults to LockTimeoutDefault (5s).
	LockTimeout time.Duration
	// LockRetries is how often a step that hit LockTimeout is tried again.
	// Defaults to LockRetriesDefault (5); negative means no retry.
	LockRetries int
	// LockRetryBackoff is the wait before the first retry, doubling after.
	// Defaults to LockRetryBackoffDefault (1s).
	LockRetryBackoff time.Duration
	// OnLockRetry, when set, is told of each retry (for progress output).
	// Defaults to nil.
	OnLockRetry func(step, attempt int, wait time.Duration)
}

// MonthsAheadDefault is how many months of partitions ahead of the current
// one a migration creates, and the worker's partitions job keeps.
const MonthsAheadDefault = 3

const bookkeeping = `
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);`

// Migrate brings the database behind pool up to date.
func Migrate(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Result, error) {
	steps, err := auditsql.Steps()
	if err != nil {
		return nil, err
	}
	locks, err := opts.lockSettings()
	if err != nil {
		return nil, err
	}
	target := steps[len(steps)-1].Version
	if opts.TargetVersion > 0 {
		if opts.TargetVersion > target {
			return nil, fmt.Errorf("target version %d: newer than the newest step %04d", opts.TargetVersion, target)
		}
		target = opts.TargetVersion
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Release()

	if err := CheckServerVersion(ctx, conn); err != nil {
		return nil, err
	}
	var isExtension bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'auditdb')`).Scan(&isExtension); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if isExtension {
		if opts.TargetVersion > 0 {
			return nil, ErrInstalledAsExtension
		}
		// The audit schema is the extension's; River's tables, the trigger's
		// implementation and the partitions are still ours, so that both
		// installs end in the same state (tests/install_test.go).
		res := &Result{DryRun: opts.DryRun}
		if res.River, err = migrateRiver(ctx, pool, opts.DryRun); err != nil {
			return nil, err
		}
		if opts.DryRun {
			return res, nil
		}
		if err := finish(ctx, conn, opts, res); err != nil {
			return nil, err
		}
		return res, nil
	}
	var encoding string
	if err := conn.QueryRow(ctx, `SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()`).Scan(&encoding); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if encoding != "UTF8" {
		return nil, fmt.Errorf("migrate: database encoding is %s: auditdb hashes UTF-8 text and needs a UTF8 database", encoding)
	}

	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey) }()

	applied := map[int]string{}
	var hasTable bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('audit.schema_migrations') IS NOT NULL`).Scan(&hasTable); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if hasTable {
		rows, err := conn.Query(ctx, `SELECT version, checksum FROM audit.schema_migrations`)
		if err != nil {
			return nil, fmt.Errorf("migrate: read applied steps: %w", err)
		}
		for rows.Next() {
			var v int
			var sum string
			if err := rows.Scan(&v, &sum); err != nil {
				return nil, err
			}
			applied[v] = sum
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("migrate: read applied steps: %w", err)
		}
	}

	res := &Result{Target: target, DryRun: opts.DryRun}
	for _, s := range steps {
		if sum, ok := applied[s.Version]; ok {
			if !sameStep(s, sum) {
				return nil, fmt.Errorf("migrate: step %04d (%s) was applied with different text (checksum %.12s, now %.12s): released steps must not change; add a new step", s.Version, s.Path, sum, s.Checksum())
			}
			res.Current = s.Version
		}
	}
	for _, s := range steps {
		if _, ok := applied[s.Version]; ok || s.Version > target {
			continue
		}
		res.Applied = append(res.Applied, Applied{Version: s.Version, Name: s.Name, Path: s.Path})
		if opts.DryRun {
			continue
		}
		err := runStep(ctx, conn, s.Version, locks, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, bookkeeping); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, s.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO audit.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
				s.Version, s.Name, s.Checksum())
			return err
		})
		if err != nil {
			return nil, stepError(ctx, conn, s, res.Current, err)
		}
		res.Current = s.Version
	}
	if opts.TargetVersion == 0 {
		if res.River, err = migrateRiver(ctx, pool, opts.DryRun); err != nil {
			return nil, err
		}
	}
	if opts.DryRun || res.Current < acceleratorStep {
		return res, nil
	}
	if opts.TargetVersion > 0 && opts.TargetVersion < steps[len(steps)-1].Version {
		// a partial migration: the trigger only; partitions come with the
		// full one
		return res, trigger(ctx, conn, opts, res)
	}
	if err := finish(ctx, conn, opts, res); err != nil {
		return nil, err
	}
	return res, nil
}

// finish puts the insert trigger's implementation in place and creates the
// partitions a writer needs: what a complete install ends with, whichever
// way the schema came (steps or CREATE EXTENSION).
func finish(ctx context.Context, conn *pgxpool.Conn, opts Options, res *Result) error {
	if err := trigger(ctx, conn, opts, res); err != nil {
		return err
	}
	ahead := opts.MonthsAhead
	switch {
	case ahead == 0:
		ahead = MonthsAheadDefault
	case ahead < 0:
		ahead = 0
	}
	rows, err := conn.Query(ctx, `SELECT partition_name FROM audit.ensure_partitions($1) WHERE created`, ahead)
	if err != nil {
		return fmt.Errorf("migrate: partitions: %w", err)
	}
	res.Partitions, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("migrate: partitions: %w", err)
	}
	return nil
}

func trigger(ctx context.Context, conn *pgxpool.Conn, opts Options, res *Result) error {
	var err error
	if opts.Accelerator {
		err = conn.QueryRow(ctx, `SELECT audit.use_accelerator(true)`).Scan(&res.Trigger)
	} else {
		err = conn.QueryRow(ctx, `SELECT audit.trigger_implementation()`).Scan(&res.Trigger)
	}
	if err != nil {
		return fmt.Errorf("migrate: insert trigger: %w", err)
	}
	return nil
}

// superseded lists, per step, the checksums of texts that step had before it
// was corrected in place, which is allowed only before auditdb's first
// release. A database that recorded one of them ran an older text that did
// the same on it (the steps listed were corrected so that a non-superuser
// owner can run them; a database that ran the old text was migrated by a
// superuser, for whom both texts do the same), so the migrator accepts it
// instead of refusing it as a changed released step.
var superseded = map[int][]string{
	// 0005 and 0010 set auditdb.maintenance with a function-level SET,
	// which PostgreSQL 15 allows only superusers for a placeholder setting;
	// they now call set_config() in the function body.
	5:  {"145df709d8c3a23a58e675203f2f70ba5298a229c89ec3b6df8d9b249b2c8c15"},
	10: {"1005067a3dcb6d0df423bd30a1cab2a0237d534b77ff49883739c3dbbec44ccc"},
}

// sameStep reports whether a recorded checksum stands for step s's text.
func sameStep(s auditsql.Step, recorded string) bool {
	return recorded == s.Checksum() || slices.Contains(superseded[s.Version], recorded)
}

// stepError says, on one line, which step failed, where that leaves the
// database, and for the failures a deployment can fix (a privilege, a
// missing library or setting) what the step needed.
func stepError(ctx context.Context, conn *pgxpool.Conn, s auditsql.Step, current int, err error) error {
	need := ""
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42501": // insufficient_privilege
			var role string
			_ = conn.QueryRow(context.WithoutCancel(ctx), `SELECT current_user`).Scan(&role)
			need = fmt.Sprintf(": role %q lacks a privilege this step needs; run migrate as the database's owner with CREATEROLE (README, \"Managed PostgreSQL\")", role)
		case "58P01": // undefined_file: a library the step loads
			need = ": the server lacks a file this step loads (make install-extension installs the C accelerator)"
		case "55P03": // lock_not_available
			need = ": another session holds a lock this step needs; run migrate again when it is done"
		}
	}
	return fmt.Errorf("migrate: step %04d (%s) failed and was rolled back, the database stays at step %04d: %w%s", s.Version, s.Path, current, err, need)
}

// acceleratorStep is the step that defines audit.use_accelerator.
const acceleratorStep = 8

// migrateRiver installs or upgrades River's tables in RiverSchema.
func migrateRiver(ctx context.Context, pool *pgxpool.Pool, dryRun bool) ([]int, error) {
	if !dryRun {
		if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+RiverSchema); err != nil {
			return nil, fmt.Errorf("migrate: river schema: %w", err)
		}
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: RiverSchema})
	if err != nil {
		return nil, fmt.Errorf("migrate: river: %w", err)
	}
	if dryRun {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regnamespace($1) IS NOT NULL`, RiverSchema).Scan(&exists); err != nil {
			return nil, fmt.Errorf("migrate: river: %w", err)
		}
		if !exists {
			var all []int
			for _, v := range m.AllVersions() {
				all = append(all, v.Version)
			}
			return all, nil
		}
	}
	r, err := m.Migrate(ctx, rivermigrate.DirectionUp, &rivermigrate.MigrateOpts{DryRun: dryRun})
	if err != nil {
		return nil, fmt.Errorf("migrate: river: %w", err)
	}
	applied := []int{}
	for _, v := range r.Versions {
		applied = append(applied, v.Version)
	}
	if !dryRun {
		// The worker (audit_maintainer) runs River: it needs River's tables,
		// sequences and functions, and nobody else does.
		_, err = pool.Exec(ctx, `DO $$ BEGIN
			IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'audit_maintainer') THEN
				GRANT USAGE ON SCHEMA `+RiverSchema+` TO audit_maintainer;
				GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA `+RiverSchema+` TO audit_maintainer;
				GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA `+RiverSchema+` TO audit_maintainer;
				GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA `+RiverSchema+` TO audit_maintainer;
			END IF; END $$`)
		if err != nil {
			return nil, fmt.Errorf("migrate: river grants: %w", err)
		}
	}
	return applied, nil
}
