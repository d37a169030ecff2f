package tests

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// Managed PostgreSQL (RDS, Cloud SQL, Azure) gives a database owner with
// CREATEROLE, never a superuser. Everything a deployment does runs as such
// an owner here: migrate, write as audit_writer, partitions and seal as
// audit_maintainer, verify with the key.
func TestManagedServiceOwner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewManagedDB(t)
	var super bool
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super))
	require.False(t, super, "the test must run as a non-superuser")

	// the CLI's default asks for the accelerator: without superuser it
	// must fall back to PL/pgSQL, not fail
	res, err := migrate.Migrate(ctx, db.Pool, migrate.Options{Accelerator: true})
	require.NoError(t, err)
	require.NotEmpty(t, res.Applied)
	require.Equal(t, "plpgsql", res.Trigger)
	again, err := migrate.Migrate(ctx, db.Pool, migrate.Options{Accelerator: true})
	require.NoError(t, err)
	require.Empty(t, again.Applied)

	writer := db.LoginRole(t, "audit_writer")
	maintainer := db.LoginRole(t, "audit_maintainer")

	// the partitions job, as the worker's role
	d := &workers.Deps{Pool: maintainer}
	_, err = d.MaintainPartitions(ctx, workers.MonthsAheadDefault)
	require.NoError(t, err)

	var hash string
	require.NoError(t, writer.QueryRow(ctx, insertEvent+` RETURNING hash`, "fhir.patient.read", "dr-123", "patient-456").Scan(&hash))
	require.Len(t, hash, 64)
	_, err = writer.Exec(ctx, `INSERT INTO audit.audit_log ("timestamp", action, status) VALUES (now(), 'b', 'success')`)
	require.NoError(t, err)

	secret := make([]byte, 32)
	_, err = rand.Read(secret)
	require.NoError(t, err)
	keys, err := integrity.ParseSealKeys("k1:"+base64.StdEncoding.EncodeToString(secret), "")
	require.NoError(t, err)
	d.Keys = keys
	rep, err := d.Seal(ctx, workers.SealOptions{})
	require.NoError(t, err)
	require.Positive(t, rep.Sealed())

	// verify as the owner and as the maintainer, with the key
	v, err := verifier.Verify(ctx, db.Pool, verifier.Options{Keys: keys.Ring})
	require.NoError(t, err)
	require.True(t, v.Intact(), "findings: %+v", v.Findings)
	require.EqualValues(t, 2, v.RowsChecked)
	v, err = verifier.Verify(ctx, maintainer, verifier.Options{Keys: keys.Ring})
	require.NoError(t, err)
	require.True(t, v.Intact(), "findings: %+v", v.Findings)
	checked := 0
	for _, ch := range v.Chains {
		checked += ch.Checkpoints
	}
	require.Equal(t, rep.Sealed(), checked, "every checkpoint's MAC is checked")
	var bad int
	require.NoError(t, db.Pool.QueryRow(ctx,
		`SELECT count(*) FROM audit.recompute_chain_heads() WHERE stored_hash <> recomputed_hash`).Scan(&bad))
	require.Zero(t, bad)
}

// A step that fails leaves the database at the last whole step and says, on
// one line, which step failed and what it needed: here an owner without
// CREATEROLE reaches the roles step (0007), whose GRANT of one group role to
// another needs it.
func TestMigrateFailureSaysWhatTheStepNeeded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewOwnedDB(t, false)
	_, err := migrate.Migrate(ctx, db.Pool, migrate.Options{})
	require.Error(t, err)
	msg := err.Error()
	require.NotContains(t, msg, "\n")
	require.Contains(t, msg, "step 0007 (0007_roles.sql) failed")
	require.Contains(t, msg, "stays at step 0006")
	require.Contains(t, msg, "SQLSTATE 42501")
	require.Contains(t, msg, "CREATEROLE")

	var last int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT max(version) FROM audit.schema_migrations`).Scan(&last))
	require.Equal(t, 6, last)
	// nothing of step 0007: its grants are not there
	var granted bool
	require.NoError(t, db.Pool.QueryRow(ctx,
		`SELECT has_table_privilege('audit_writer', 'audit.audit_log', 'INSERT')`).Scan(&granted))
	require.False(t, granted, "step 0007 was rolled back as a whole")
}
