package tests

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/tests/harness"
)

// schemaFingerprint lists what makes up schema audit (and the public view):
// relations and their columns, constraints, indexes, triggers, functions
// with their bodies, views, grants and seeded rows.
const schemaFingerprint = `
SELECT 'rel ' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(array_to_string(c.relacl, ','), '') || ' ' || coalesce(array_to_string(c.reloptions, ','), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'audit' AND c.relname NOT LIKE 'schema_migrations%'
UNION ALL
SELECT 'col ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull
       || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' ' || a.attidentity::text || ' ' || coalesce(array_to_string(a.attacl, ','), '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname IN ('audit') AND a.attnum > 0 AND NOT a.attisdropped AND c.relname NOT LIKE 'schema_migrations%'
UNION ALL
SELECT 'con ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'audit'::regnamespace AND conrelid::regclass::text NOT LIKE '%schema_migrations%'
UNION ALL
SELECT 'idx ' || pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relnamespace = 'audit'::regnamespace AND c.relname NOT LIKE 'schema_migrations%'
UNION ALL
SELECT 'trg ' || tgrelid::regclass || ' ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'fn ' || p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid)) || ' ' || coalesce(array_to_string(p.proacl, ','), '')
FROM pg_proc p WHERE p.pronamespace = 'audit'::regnamespace AND p.prokind <> 'a'
UNION ALL
SELECT 'agg ' || p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'audit'::regnamespace AND p.prokind = 'a'
UNION ALL
SELECT 'view ' || c.oid::regclass || ' ' || md5(pg_get_viewdef(c.oid)) || ' ' || coalesce(array_to_string(c.relacl, ','), '')
FROM pg_class c WHERE c.relkind = 'v' AND c.relnamespace IN ('audit'::regnamespace, 'public'::regnamespace)
UNION ALL
SELECT 'row settings ' || key || '=' || CASE WHEN key = 'log_id' THEN '(a random uuid, made at install)' ELSE value END FROM audit.settings
UNION ALL
SELECT 'row policy ' || policy_name || ' ' || retention_days || ' ' || archive_after_days || ' ' || data_classification FROM audit.retention_policies
UNION ALL
SELECT 'row head ' || chain_id || ' ' || head_seq || ' ' || encode(head_hash, 'hex') FROM audit.chain_heads
ORDER BY 1`

func fingerprint(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), schemaFingerprint)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// The same SQL files install as CREATE EXTENSION and as migrations, with the
// same result. Needs `make install-extension` (make test runs it first).
func TestInstallBothWaysSameSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	viaExt := harness.NewEmptyDB(t)
	if _, err := viaExt.Pool.Exec(ctx, `CREATE EXTENSION auditdb`); err != nil {
		t.Fatalf("CREATE EXTENSION auditdb failed: %v: run `make install-extension` first", err)
	}
	// what the README says to run after CREATE EXTENSION: migrate leaves
	// the extension's schema alone but installs River's tables and the
	// partitions
	res, err := migrate.Migrate(ctx, viaExt.Pool, migrate.Options{})
	require.NoError(t, err)
	require.Empty(t, res.Applied)
	require.NotEmpty(t, res.River)
	viaMigrate := harness.NewEmptyDB(t)
	res, err = migrate.Migrate(ctx, viaMigrate.Pool, migrate.Options{})
	require.NoError(t, err)
	require.NotEmpty(t, res.Applied)

	a, b := fingerprint(t, viaExt.Pool), fingerprint(t, viaMigrate.Pool)
	require.Greater(t, len(a), 100)
	require.Empty(t, symmetricDiff(a, b), "lines only in the extension install (-) or only in the migrated one (+); a stale extension install needs `make install-extension`")

	// and both work the same
	for _, pool := range []*pgxpool.Pool{viaExt.Pool, viaMigrate.Pool} {
		_, err := pool.Exec(ctx, `SELECT count(*) FROM audit.ensure_partitions(1)`)
		require.NoError(t, err)
		insertN(t, pool, 20)
		requireIntact(t, pool)
	}
	// a second migrate changes nothing; River's tables are there
	res, err = migrate.Migrate(ctx, viaExt.Pool, migrate.Options{})
	require.NoError(t, err)
	require.Empty(t, res.Applied)
	var jobs bool
	require.NoError(t, viaExt.Pool.QueryRow(ctx, `SELECT to_regclass('`+migrate.RiverSchema+`.river_job') IS NOT NULL`).Scan(&jobs))
	require.True(t, jobs)
	// and refuses a step-targeted migration of it
	_, err = migrate.Migrate(ctx, viaExt.Pool, migrate.Options{TargetVersion: 1})
	require.ErrorIs(t, err, migrate.ErrInstalledAsExtension)
}

func TestMigrateIdempotentAndDryRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewEmptyDB(t)

	dry, err := migrate.Migrate(ctx, db.Pool, migrate.Options{DryRun: true})
	require.NoError(t, err)
	require.NotEmpty(t, dry.Applied)
	var exists bool
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT to_regclass('audit.audit_log') IS NOT NULL`).Scan(&exists))
	require.False(t, exists, "a dry run changes nothing")

	part, err := migrate.Migrate(ctx, db.Pool, migrate.Options{TargetVersion: 2})
	require.NoError(t, err)
	require.Len(t, part.Applied, 2)
	rest, err := migrate.Migrate(ctx, db.Pool, migrate.Options{})
	require.NoError(t, err)
	require.Len(t, rest.Applied, len(dry.Applied)-2)
	again, err := migrate.Migrate(ctx, db.Pool, migrate.Options{})
	require.NoError(t, err)
	require.Empty(t, again.Applied)
	require.Equal(t, rest.Current, again.Current)

	// a released step whose text changed is refused
	_, err = db.Pool.Exec(ctx, `UPDATE audit.schema_migrations SET checksum = 'x' WHERE version = 1`)
	require.NoError(t, err)
	_, err = migrate.Migrate(ctx, db.Pool, migrate.Options{})
	require.ErrorContains(t, err, "was applied with different text")
}

func symmetricDiff(a, b []string) []string {
	seen := map[string]int{}
	for _, x := range a {
		seen[x]--
	}
	for _, x := range b {
		seen[x]++
	}
	var out []string
	for x, n := range seen {
		switch {
		case n < 0:
			out = append(out, "- "+x)
		case n > 0:
			out = append(out, "+ "+x)
		}
	}
	return out
}
