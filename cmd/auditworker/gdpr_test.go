package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/client"
	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/harness"
)

func TestGDPRCommands(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id, target_resource_type, target_resource_id, organization_id, data_classification)
		SELECT now(), 'fhir.patient.read', 'success', 'dr-' || (g % 3), 'Patient', 'patient-' || (g % 4), 'org-1', 'PHI' FROM generate_series(1, 40) g`)
	require.NoError(t, err)
	key, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	u := []string{"--database-url", db.URL}

	// export to a file prints the summary
	out := filepath.Join(t.TempDir(), "export.json")
	code, stdout, stderr := run(t, append(u, "gdpr", "export", "--out", out, "--resource-type", "Patient", "--resource-id", "patient-1")...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "exported 10 events (0 as principal, 10 as target)")
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	var doc struct{ Summary client.ExportSummary }
	require.NoError(t, json.Unmarshal(b, &doc))
	require.EqualValues(t, 10, doc.Summary.Events)

	// erasure needs the seal key, and a hold blocks it
	code, _, stderr = run(t, append(u, "gdpr", "erase", "--reason", "request 7", "--resource-type", "Patient", "--resource-id", "patient-1")...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "no seal key configured")
	code, stdout, stderr = run(t, append(u, "gdpr", "holds", "add", "--scope", "organization", "--value", "org-1", "--reason", "litigation")...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "legal hold 1 placed")
	code, _, stderr = run(t, append(u, "gdpr", "erase", "--reason", "request 7", "--seal-keys", key, "--resource-type", "Patient", "--resource-id", "patient-1")...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "legal hold")
	require.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, "one line: %q", stderr)
	code, stdout, _ = run(t, append(u, "gdpr", "holds", "list", "--json")...)
	require.Equal(t, 0, code)
	var holds []client.LegalHold
	require.NoError(t, json.Unmarshal([]byte(stdout), &holds))
	require.Len(t, holds, 1)
	code, _, stderr = run(t, append(u, "gdpr", "holds", "release", "1")...)
	require.Equal(t, 0, code, stderr)
	code, _, stderr = run(t, append(u, "gdpr", "holds", "release", "1")...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "no such active hold")

	code, stdout, stderr = run(t, append(u, "gdpr", "erase", "--reason", "request 7", "--seal-keys", key, "--json", "--resource-type", "Patient", "--resource-id", "patient-1")...)
	require.Equal(t, 0, code, stderr)
	var r client.ErasureRequest
	require.NoError(t, json.Unmarshal([]byte(stdout), &r))
	require.Equal(t, "done", r.Status)
	require.EqualValues(t, 10, r.RowsDone)

	ring, err := integrity.ParseSealKeys(key, "")
	require.NoError(t, err)
	rep, err := verifier.Verify(ctx, db.Pool, verifier.Options{Keys: ring.Ring, NoRecord: true})
	require.NoError(t, err)
	require.True(t, rep.Intact(), "%+v", rep.Findings)

	code, stdout, _ = run(t, append(u, "compliance", "--hipaa", "on")...)
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "hipaa  on")
	code, _, stderr = run(t, append(u, "compliance", "--hipaa", "maybe")...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "hipaa: must be on or off")
	code, _, stderr = run(t, append(u, "gdpr", "status", "x")...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "status: REQUEST_ID must be a positive number")
}
