package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
)

// attestationRunSeals checks the verification records an attestation rests
// on (verifier.CheckRunSeals): without keys, that each finished run's
// status, findings count and chains agree with its recorded findings; with
// keys, also every run's seal. It returns the section listing the runs
// that cannot be trusted, a note saying what was checked, and how many.
func attestationRunSeals(ctx context.Context, tx pgx.Tx, keys map[string][]byte) (ReportSection, string, int, error) {
	section := ReportSection{
		Title: "Verification records that cannot be trusted",
		Columns: []ReportColumn{
			{Key: "run_id", Label: "Run"}, {Key: "problem", Label: "Problem"}, {Key: "detail", Label: "Detail"},
		},
		Rows: [][]any{},
	}
	problems, err := verifier.CheckRunSeals(ctx, tx, integrity.Keyring(keys))
	if errors.Is(err, verifier.ErrRunSealsNotInstalled) {
		return section, "Verification runs are not sealed in this database (run auditworker migrate): their records were taken as written.", 0, nil
	}
	if err != nil {
		return section, "", 0, fmt.Errorf("verification records: %w", err)
	}
	for _, p := range problems {
		section.Rows = append(section.Rows, []any{p.RunID, p.Kind, p.Detail})
	}
	note := "Verification records were checked against their findings, but not their seals (no seal keys given): whoever may write audit.verification_runs could have changed them."
	if len(keys) > 0 {
		note = "Verification records were checked against their findings and their seals (MACs under the seal keys) since sealing began."
	}
	return section, note, len(problems), nil
}
