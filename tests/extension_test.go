package tests

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/embeddedpg"
	"github.com/auditdb/auditdb/internal/migrate"
	auditsql "github.com/auditdb/auditdb/sql"
	"github.com/auditdb/auditdb/tests/harness"
)

// riverFingerprint lists River's schema: its tables, columns, indexes,
// functions, grants and the migrations recorded.
const riverFingerprint = `
SELECT 'rel ' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(array_to_string(c.relacl, ','), '')
FROM pg_class c WHERE c.relnamespace = 'audit_river'::regnamespace
UNION ALL
SELECT 'col ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.relnamespace = 'audit_river'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'idx ' || pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relnamespace = 'audit_river'::regnamespace
UNION ALL
SELECT 'fn ' || p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid)) || ' ' || coalesce(array_to_string(p.proacl, ','), '')
FROM pg_proc p WHERE p.pronamespace = 'audit_river'::regnamespace
UNION ALL
SELECT 'migration ' || line || ' ' || version FROM audit_river.river_migration
UNION ALL
SELECT 'nsp ' || coalesce(array_to_string(nspacl, ','), '') FROM pg_namespace WHERE nspname = 'audit_river'
ORDER BY 1`

// privateInstall copies the machine's PostgreSQL 15 (bin, lib, share) into
// a folder of its own, where PostgreSQL finds its share and lib folders
// relative to its binaries, and installs this tree's extension script
// there: CREATE EXTENSION then runs exactly the SQL of this checkout,
// whatever `make install-extension` last put into the system folders. The
// C accelerator is left out, so the trigger comparison does not depend on a
// build of it (both installs then keep PL/pgSQL).
func privateInstall(t *testing.T) string {
	t.Helper()
	bin, err := embeddedpg.FindBinDir()
	require.NoError(t, err)
	out, err := osexec.Command(filepath.Join(bin, "pg_config"), "--sharedir", "--pkglibdir").Output()
	if err != nil {
		t.Fatalf("pg_config in %s: %v", bin, err)
	}
	var share, lib string
	_, err = fmt.Sscan(string(out), &share, &lib)
	require.NoError(t, err)
	root, err := os.MkdirTemp("", "auditdb-pginstall-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(root) })
	require.NoError(t, os.Chmod(root, 0o755)) // the server may run as the postgres user
	// Debian's layout: /usr/lib/postgresql/15/{bin,lib}, /usr/share/postgresql/15;
	// PostgreSQL locates share and lib relative to bin by the configured
	// paths' common prefix, so the same layout under root works.
	for _, d := range []string{filepath.Dir(bin), share} {
		dst := filepath.Join(root, d)
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		if out, err := osexec.Command("cp", "-a", d, dst).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v: %s", d, err, out)
		}
	}
	_ = os.Remove(filepath.Join(root, lib, "auditdb_accel.so"))
	script, err := auditsql.ExtensionScript()
	require.NoError(t, err)
	extDir := filepath.Join(root, share, "extension")
	require.NoError(t, os.WriteFile(filepath.Join(extDir, "auditdb--"+auditsql.ExtensionVersion+".sql"), []byte(script), 0o644))
	control, err := os.ReadFile("../sql/auditdb.control")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(extDir, "auditdb.control"), control, 0o644))
	newBin := filepath.Join(root, bin)
	got, err := osexec.Command(filepath.Join(newBin, "pg_config"), "--sharedir").Output()
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, share), string(got[:len(got)-1]), "the copy finds its own share folder")
	return newBin
}

// CREATE EXTENSION auditdb followed by what the README says to run next
// (`auditworker migrate`) ends in the same state as `auditworker migrate`
// alone: schema audit with its functions, grants, partitions and seeded
// rows, River's schema and the insert trigger's implementation.
func TestExtensionThenMigrateEqualsMigrate(t *testing.T) {
	t.Parallel()
	var viaExt, viaMigrate *pgxpool.Pool
	if harness.UsesDocker() {
		// the image was built from this checkout: its extension is ours
		viaExt, viaMigrate = harness.NewEmptyDB(t).Pool, harness.NewEmptyDB(t).Pool
	} else {
		viaExt, viaMigrate = privateServer(t)
	}
	compareInstalls(t, viaExt, viaMigrate)
}

// privateServer starts a PostgreSQL from privateInstall and returns two
// empty databases on it.
func privateServer(t *testing.T) (*pgxpool.Pool, *pgxpool.Pool) {
	ctx := context.Background()
	srv, err := embeddedpg.Start(ctx, embeddedpg.Config{BinDir: privateInstall(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	open := func(name string) *pgxpool.Pool {
		conn, err := pgx.Connect(ctx, srv.URL("postgres"))
		require.NoError(t, err)
		_, err = conn.Exec(ctx, "CREATE DATABASE "+name)
		require.NoError(t, err)
		require.NoError(t, conn.Close(ctx))
		pool, err := pgxpool.New(ctx, srv.URL(name))
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		return pool
	}
	return open("via_extension"), open("via_migrate")
}

func compareInstalls(t *testing.T, viaExt, viaMigrate *pgxpool.Pool) {
	ctx := context.Background()
	_, err := viaExt.Exec(ctx, `CREATE EXTENSION auditdb`)
	require.NoError(t, err)
	// the README's next step; the CLI's defaults (the accelerator where the
	// server has it, 3 months of partitions ahead)
	res, err := migrate.Migrate(ctx, viaExt, migrate.Options{Accelerator: true})
	require.NoError(t, err)
	require.Empty(t, res.Applied, "the extension's schema is left alone")
	require.NotEmpty(t, res.River)
	require.Len(t, res.Partitions, migrate.MonthsAheadDefault+1)

	res2, err := migrate.Migrate(ctx, viaMigrate, migrate.Options{Accelerator: true})
	require.NoError(t, err)
	require.Equal(t, res.Trigger, res2.Trigger)
	require.Equal(t, res.Partitions, res2.Partitions)

	a, b := fingerprint(t, viaExt), fingerprint(t, viaMigrate)
	require.Greater(t, len(a), 100)
	require.Empty(t, symmetricDiff(a, b), "schema audit: lines only after CREATE EXTENSION + migrate (-) or only after migrate (+)")
	ra, rb := rows(t, viaExt, riverFingerprint), rows(t, viaMigrate, riverFingerprint)
	require.Greater(t, len(ra), 20)
	require.Empty(t, symmetricDiff(ra, rb), "River's schema differs")
	var ta, tb string
	require.NoError(t, viaExt.QueryRow(ctx, `SELECT audit.trigger_implementation()`).Scan(&ta))
	require.NoError(t, viaMigrate.QueryRow(ctx, `SELECT audit.trigger_implementation()`).Scan(&tb))
	require.Equal(t, tb, ta)

	// and both work the same: the README's insert, verified
	for _, pool := range []*pgxpool.Pool{viaExt, viaMigrate} {
		insertN(t, pool, 20)
		requireIntact(t, pool)
	}
}

func rows(t *testing.T, pool *pgxpool.Pool, sql string) []string {
	t.Helper()
	r, err := pool.Query(context.Background(), sql)
	require.NoError(t, err)
	out, err := pgx.CollectRows(r, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}
