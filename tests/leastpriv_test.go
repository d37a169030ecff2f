package tests

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/harness"
)

// Every SECURITY DEFINER function of schema audit runs with its owner's
// rights, so only the roles that need one may execute it: never PUBLIC,
// and exactly these roles (the owner aside; "" means nobody calls it
// directly: a trigger function, or one only the owner's functions call). A
// new SECURITY DEFINER function fails this test until it is listed.
func TestSecurityDefinerFunctionsExecutableOnlyByTheirRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	want := map[string]string{
		"audit.audit_log_flush_chain_head()":    "",
		"audit.chain_acquire()":                 "",
		"audit.audit_log_before_insert()":       "", // the insert trigger runs as its owner, for no role's direct call
		"audit.chain_holders_scrub()":           "audit_maintainer",
		"audit.analyze_table(regclass)":         "audit_maintainer",
		"audit.audit_log_pseudonymise()":        "",
		"audit.create_partition(date)":          "audit_maintainer",
		"audit.partition_months(integer)":       "audit_maintainer",
		"audit.disable_pseudonymisation(text)":  "audit_maintainer",
		"audit.enable_pseudonymisation(text)":   "audit_maintainer",
		"audit.ensure_partitions(integer)":      "audit_maintainer",
		"audit.rescue_default_partition()":      "audit_maintainer",
		"audit.retention_remove(bigint[])":      "audit_maintainer",
		"audit.set_compliance(boolean,boolean)": "audit_maintainer",
		"audit.subject_principal_ids(text)":     "audit_maintainer,audit_privacy_officer",
	}
	rows, err := db.Pool.Query(ctx, `SELECT p.oid::regprocedure::text,
			has_function_privilege('public', p.oid, 'EXECUTE'),
			coalesce((SELECT string_agg(r.rolname, ',' ORDER BY r.rolname)
			          FROM aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee
			          WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner), '')
		FROM pg_proc p WHERE p.pronamespace = 'audit'::regnamespace AND p.prosecdef ORDER BY 1`)
	require.NoError(t, err)
	got := map[string]string{}
	var (
		fn, grantees string
		public       bool
	)
	_, err = pgx.ForEachRow(rows, []any{&fn, &public, &grantees}, func() error {
		require.False(t, public, "%s: PUBLIC may execute it", fn)
		if twin, ok := strings.CutSuffix(fn, "_c()"); ok {
			// the C accelerator's twin, there when the library is:
			// the same rights as its PL/pgSQL one
			require.Equal(t, want[twin+"()"], grantees, fn)
			return nil
		}
		got[fn] = grantees
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, want, got)
}

// Runs recorded before step 0019 were never sealed: migrating a database
// with such runs marks where sealing began, so only later runs must carry
// a seal.
func TestRunSealsStartAtTheMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewEmptyDB(t)
	_, err := migrate.Migrate(ctx, db.Pool, migrate.Options{TargetVersion: 12})
	require.NoError(t, err)
	var old int64
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO audit.verification_runs (mode, status, finished_at)
		VALUES ('full', 'intact', now()) RETURNING id`).Scan(&old))
	_, err = migrate.Migrate(ctx, db.Pool, migrate.Options{})
	require.NoError(t, err)
	keys := integrity.Keyring{"k1": make([]byte, 32)}
	problems, err := verifier.CheckRunSeals(ctx, db.Pool, keys)
	require.NoError(t, err)
	require.Empty(t, problems, "the run from before sealing began is not held against the log")
	var fresh int64
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO audit.verification_runs (mode, status, finished_at)
		VALUES ('full', 'intact', now()) RETURNING id`).Scan(&fresh))
	problems, err = verifier.CheckRunSeals(ctx, db.Pool, keys)
	require.NoError(t, err)
	require.Equal(t, []verifier.RunProblem{{RunID: fresh, Kind: verifier.RunUnsealed,
		Detail: "no seal: recorded without the seal key, or its seal was removed"}}, problems)
	require.Greater(t, fresh, old)
}
