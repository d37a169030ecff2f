package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// Not parallel: urfave/cli v2 writes package globals (cli.HelpFlag's
// default, the shared help command's HelpName) every time a command runs,
// so two Runs with subcommands at once are a data race under -race. A
// sequential test finishes before the parallel ones start.
func TestRetentionAndArchiveVerifyCLI(t *testing.T) {
	ctx := context.Background()
	db := harness.NewDB(t)
	dir := t.TempDir()
	key, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id, retention_policy, data_classification)
		SELECT now() - interval '200 days' + g * interval '1 minute', 'a', 'success', 'patient-' || g, 'minimal', 'PUBLIC'
		FROM generate_series(1, 40) g`)
	require.NoError(t, err)
	base := []string{"--database-url", db.URL}

	code, out, errOut := run(t, append(base, "retention", "plan", "--archive-dir", dir)...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "39 row(s) to archive now")
	require.Contains(t, out, "newest row is kept")

	code, out, _ = run(t, append(base, "retention", "plan", "--json", "--archive-dir", dir)...)
	require.Equal(t, 0, code)
	var plan workers.RetentionPlan
	require.NoError(t, json.Unmarshal([]byte(out), &plan))
	require.EqualValues(t, 39, plan.Rows)

	code, out, _ = run(t, append(base, "retention", "run", "--dry-run", "--archive-dir", dir)...)
	require.Equal(t, 0, code)
	require.Contains(t, out, "dry run: nothing was changed")

	code, _, errOut = run(t, append(base, "retention", "run", "--archive-dir", dir, "--seal-keys", "")...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no seal key configured")

	code, out, errOut = run(t, append(base, "retention", "run", "--archive-dir", dir, "--seal-keys", key)...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "39 row(s) archived in 1 file(s), 39 row(s) removed")
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl.gz"))
	require.NoError(t, err)
	require.Len(t, files, 1)

	code, out, errOut = run(t, append(base, "archive", "verify", "--seal-keys", key, files[0])...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "archive INTACT")
	require.Contains(t, out, "their seals verify")
	code, out, _ = run(t, "archive", "verify", "--offline", files[0])
	require.Equal(t, 0, code)
	require.Contains(t, out, "checked from the file alone")

	// one modified line
	f, err := os.Open(files[0])
	require.NoError(t, err)
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	text, err := io.ReadAll(zr)
	require.NoError(t, err)
	f.Close()
	lines := strings.SplitAfter(string(text), "\n")
	lines[10] = strings.Replace(lines[10], `"patient-`, `"patient-x`, 1)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err = zw.Write([]byte(strings.Join(lines, "")))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	edited := filepath.Join(t.TempDir(), "edited.jsonl.gz")
	require.NoError(t, os.WriteFile(edited, buf.Bytes(), 0o600))

	code, out, _ = run(t, "archive", "verify", edited)
	require.Equal(t, 2, code)
	require.Contains(t, out, "archive TAMPERED")
	require.Contains(t, out, "line 11: chain")
	require.Contains(t, out, "seq 10: pii values or pii_commitment differ")
	require.NotContains(t, out, "patient-", "findings name positions, never values")

	code, out, _ = run(t, append(base, "archive", "verify", "--json", "--seal-keys", key, edited)...)
	require.Equal(t, 2, code)
	var rep integrity.ArchiveReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.True(t, rep.ManifestsChecked)
	kinds := map[integrity.Kind]int{}
	for _, f := range rep.Findings {
		kinds[f.Kind]++
	}
	require.Equal(t, map[integrity.Kind]int{integrity.RowModified: 2}, kinds, "the edited row, and the file's digest against the manifest: %+v", rep.Findings)

	code, out, _ = run(t, append(base, "verify")...)
	require.Equal(t, 0, code, out)
}

// Not parallel (see above). Retention into an S3 bucket with Object Lock
// from the CLI: --archive-sink and --archive-retain, the JSON report, and
// archive verify reading the object from the bucket.
func TestRetentionS3CLI(t *testing.T) {
	ctx := context.Background()
	db := harness.NewDB(t)
	bucket := harness.SharedS3().NewBucket(t, true)
	key, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id, retention_policy, data_classification)
		SELECT now() - interval '200 days' + g * interval '1 minute', 'a', 'success', 'patient-' || g, 'minimal', 'PUBLIC'
		FROM generate_series(1, 20) g`)
	require.NoError(t, err)
	sink := "s3://" + bucket + "/archives"
	code, out, errOut := run(t, "--database-url", db.URL, "retention", "run", "--json", "--archive-sink", sink,
		"--archive-retain", "2h", "--seal-keys", key)
	require.Equal(t, 0, code, errOut)
	var res workers.RetentionResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res.Archives, 1)
	a := res.Archives[0]
	require.Equal(t, sink+"/"+a.Name, a.URI)
	require.True(t, a.Locked)
	require.NotNil(t, a.RetainUntil)

	code, out, errOut = run(t, "--database-url", db.URL, "archive", "verify", "--seal-keys", key, a.URI)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "archive INTACT")

	code, _, errOut = run(t, "--database-url", db.URL, "retention", "run", "--archive-sink", "s3://no-such-bucket-cli/x", "--seal-keys", key)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no-such-bucket-cli")
}
