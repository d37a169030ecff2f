package verifier

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditdb/auditdb/integrity"
)

// The database side of sealed verification runs (integrity.RunMAC): Verify
// seals the run it records (Options.SealKeyID), CheckRunSeals checks the
// records readers rest on.

// recordOf is the row Verify stores for f (row_id NULL when unknown).
func recordOf(f integrity.Finding) integrity.FindingRecord {
	seq := f.ChainSeq
	r := integrity.FindingRecord{ChainID: f.ChainID, ChainSeq: &seq, Kind: string(f.Kind), Detail: f.Detail}
	if f.RowID != 0 {
		id := f.RowID
		r.RowID = &id
	}
	return r
}

// sealRun writes the MAC of the run just recorded in tx, over what the
// table now holds for it, so that a reader recomputes exactly that.
func sealRun(ctx context.Context, tx pgx.Tx, runID int64, rep *integrity.Report, keyID string, key []byte) error {
	var (
		r                 = integrity.RunSeal{ID: runID}
		started, finished time.Time
	)
	if err := tx.QueryRow(ctx, `SELECT mode, status, started_at, finished_at, chains, rows_checked, findings_count
		FROM audit.verification_runs WHERE id = $1`, runID).
		Scan(&r.Mode, &r.Status, &started, &finished, &r.Chains, &r.RowsChecked, &r.FindingsCount); err != nil {
		return fmt.Errorf("seal run: %w", err)
	}
	r.StartedAtUS, r.FinishedAtUS = started.UnixMicro(), finished.UnixMicro()
	records := make([]integrity.FindingRecord, len(rep.Findings))
	for i, f := range rep.Findings {
		records[i] = recordOf(f)
	}
	r.FindingsDigest = integrity.FindingsDigest(records)
	if _, err := tx.Exec(ctx, `UPDATE audit.verification_runs SET key_id = $2, mac = $3 WHERE id = $1`,
		runID, keyID, integrity.RunMAC(key, r)); err != nil {
		return fmt.Errorf("seal run: %w", err)
	}
	return nil
}

// Kinds of RunProblem.
const (
	// RunContradicted: the run's status, findings count or chains disagree
	// with the findings recorded for it (findings are insert-only, so a
	// run that found something keeps its findings). Checked without keys.
	RunContradicted = "contradicted"
	// RunUnsealed: a finished run recorded since sealing began has no MAC:
	// it was recorded without the seal key, or its MAC was removed.
	RunUnsealed = "unsealed"
	// RunUnknownKey: the run's MAC names a key that is not in the ring.
	RunUnknownKey = "unknown_key"
	// RunForged: the run's MAC does not verify: the record was changed
	// after it was sealed.
	RunForged = "forged"
)

// RunProblem is a verification run whose record cannot be trusted.
type RunProblem struct {
	RunID  int64  `json:"run_id"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// ErrRunSealsNotInstalled: the database predates step 0019, whose columns
// hold the run seals.
var ErrRunSealsNotInstalled = errors.New("verification runs are not sealed in this database: run auditworker migrate (step 0019)")

// CheckRunSeals checks the records of finished verification runs (status
// intact or tampered). Without keys: that each run's status, findings
// count and chains agree with its recorded findings. With keys, also: that
// every such run recorded since sealing began (audit.settings
// run_seals_from) carries a MAC that verifies under its key. It returns
// the problems found, oldest run first; none means the records are
// consistent (and, with keys, as the verifier wrote them).
// q is a pool, a connection or a transaction (a report reads everything in
// one snapshot).
func CheckRunSeals(ctx context.Context, q Querier, keys integrity.Keyring) ([]RunProblem, error) {
	rows, err := q.Query(ctx, `SELECT (SELECT value::bigint FROM audit.settings WHERE key = 'run_seals_from')`)
	if err != nil {
		return nil, fmt.Errorf("check run seals: %w", err)
	}
	sealsFrom, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[*int64])
	if err != nil {
		return nil, fmt.Errorf("check run seals: %w", err)
	}
	if sealsFrom == nil {
		return nil, ErrRunSealsNotInstalled
	}
	var problems []RunProblem
	rows, err = q.Query(ctx, `SELECT r.id, r.status, r.findings_count, count(f.run_id),
			coalesce(bool_and(f.chain_id = ANY (r.chains)), true)
		FROM audit.verification_runs r
		LEFT JOIN audit.verification_findings f ON f.run_id = r.id
		WHERE r.findings_count <> 0 OR r.status = 'tampered' OR f.run_id IS NOT NULL
		GROUP BY r.id
		HAVING r.status <> 'tampered' OR r.findings_count <> count(f.run_id) OR count(f.run_id) = 0
		    OR NOT coalesce(bool_and(f.chain_id = ANY (r.chains)), true)
		ORDER BY r.id`)
	if err != nil {
		return nil, fmt.Errorf("check run seals: %w", err)
	}
	var (
		id            int64
		status        string
		count, stored int64
		inChains      bool
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &status, &stored, &count, &inChains}, func() error {
		problems = append(problems, RunProblem{RunID: id, Kind: RunContradicted,
			Detail: fmt.Sprintf("status %s with findings_count %d, but %d findings recorded%s", status, stored, count,
				map[bool]string{false: ", some on chains the run does not cover", true: ""}[inChains])})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check run seals: %w", err)
	}
	if len(keys) == 0 {
		return problems, nil
	}

	// the findings of every sealed run that has any, by run
	findings := map[int64][]integrity.FindingRecord{}
	rows, err = q.Query(ctx, `SELECT run_id, chain_id, chain_seq, row_id, kind, detail FROM audit.verification_findings
		WHERE run_id >= $1`, *sealsFrom)
	if err != nil {
		return nil, fmt.Errorf("check run seals: %w", err)
	}
	var f integrity.FindingRecord
	_, err = pgx.ForEachRow(rows, []any{&id, &f.ChainID, &f.ChainSeq, &f.RowID, &f.Kind, &f.Detail}, func() error {
		c := f
		if f.ChainSeq != nil {
			v := *f.ChainSeq
			c.ChainSeq = &v
		}
		if f.RowID != nil {
			v := *f.RowID
			c.RowID = &v
		}
		findings[id] = append(findings[id], c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check run seals: %w", err)
	}
	rows, err = q.Query(ctx, `SELECT id, mode, status, started_at, finished_at, chains, rows_checked, findings_count, key_id, mac
		FROM audit.verification_runs
		WHERE id >= $1 AND status IN ('intact', 'tampered')
		ORDER BY id`, *sealsFrom)
	if err != nil {
		return nil, fmt.Errorf("check run seals: %w", err)
	}
	var (
		r                 integrity.RunSeal
		started, finished *time.Time
		keyID, mac        *string
	)
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Mode, &r.Status, &started, &finished, &r.Chains, &r.RowsChecked, &r.FindingsCount, &keyID, &mac}, func() error {
		switch {
		case mac == nil || keyID == nil || finished == nil:
			problems = append(problems, RunProblem{RunID: r.ID, Kind: RunUnsealed,
				Detail: "no seal: recorded without the seal key, or its seal was removed"})
			return nil
		case keys[*keyID] == nil:
			problems = append(problems, RunProblem{RunID: r.ID, Kind: RunUnknownKey,
				Detail: fmt.Sprintf("sealed with key %q, which is not in the ring", *keyID)})
			return nil
		}
		r.StartedAtUS, r.FinishedAtUS = started.UnixMicro(), finished.UnixMicro()
		r.FindingsDigest = integrity.FindingsDigest(findings[r.ID])
		if !hmac.Equal([]byte(integrity.RunMAC(keys[*keyID], r)), []byte(*mac)) {
			problems = append(problems, RunProblem{RunID: r.ID, Kind: RunForged,
				Detail: "the seal does not verify: the record was changed after the verifier wrote it"})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check run seals: %w", err)
	}
	slices.SortStableFunc(problems, func(a, b RunProblem) int {
		switch {
		case a.RunID < b.RunID:
			return -1
		case a.RunID > b.RunID:
			return 1
		}
		return 0
	})
	return problems, nil
}
