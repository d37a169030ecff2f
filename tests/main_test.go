// Package tests holds auditdb's integration suites. They run against a real
// PostgreSQL (and Redis) started by package harness; see its doc.
package tests

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/harness"
)

func TestMain(m *testing.M) {
	harness.Main(m, harness.Options{Redis: true})
}

const insertEvent = `INSERT INTO audit_log ("timestamp", action, status, principal_id, principal_type,
	organization_id, target_resource_type, target_resource_id, source_ip, outcome_description,
	data_classification, details)
VALUES (now(), $1, 'success', $2, 'practitioner', 'org-1', 'Patient', $3, '10.0.0.1',
	'Viewed chart', 'PHI', '{"department": "cardiology"}')`

func insertN(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO audit_log ("timestamp", action, status,
		principal_id, target_resource_id, source_ip, details, data_classification)
		SELECT now() - g * interval '1 second', 'fhir.patient.read', 'success', 'user-' || g,
		       'patient-' || g, ('10.0.0.' || (g % 250 + 1))::inet, jsonb_build_object('n', g), 'PHI'
		FROM generate_series(1, $1) g`, n)
	require.NoError(t, err)
}

func verify(t *testing.T, pool *pgxpool.Pool, opts verifier.Options) *integrity.Report {
	t.Helper()
	rep, err := verifier.Verify(context.Background(), pool, opts)
	require.NoError(t, err)
	return rep
}

// requireIntact verifies with Go and with the SQL recomputation.
func requireIntact(t *testing.T, pool *pgxpool.Pool) *integrity.Report {
	t.Helper()
	rep := verify(t, pool, verifier.Options{})
	require.True(t, rep.Intact(), "findings: %+v", rep.Findings)
	var bad int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*) FROM audit.recompute_chain_heads() WHERE stored_hash <> recomputed_hash`).Scan(&bad))
	require.Zero(t, bad, "the SQL recomputation disagrees")
	return rep
}
