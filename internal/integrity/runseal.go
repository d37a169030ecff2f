package integrity

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// A finished verification run is sealed like a checkpoint: the verifier
// writes a MAC under the active seal key over the run's result into
// audit.verification_runs (key_id, mac; step 0019), in the transaction
// that records the result. audit_maintainer may UPDATE that table (it
// records runs), so without the seal it could flip a tampered run to
// intact and every reader of the table (the attestation, integrity_status,
// alerts) would believe it. With the keys, CheckRunSeals finds that.

// FindingRecord is one row of audit.verification_findings as stored:
// chain_seq and row_id may be NULL.
type FindingRecord struct {
	ChainID  int16
	ChainSeq *int64
	RowID    *int64
	Kind     string
	Detail   string
}

// recordOf is the row Verify stores for f (row_id NULL when unknown).
func recordOf(f Finding) FindingRecord {
	seq := f.ChainSeq
	r := FindingRecord{ChainID: f.ChainID, ChainSeq: &seq, Kind: string(f.Kind), Detail: f.Detail}
	if f.RowID != 0 {
		id := f.RowID
		r.RowID = &id
	}
	return r
}

// FindingsDigest returns hex SHA-256 of the run's findings: each as
// J('auditdb/finding/v1', chain_id, chain_seq, row_id, kind, detail), the
// encodings sorted bytewise, each followed by '\n' (J escapes newlines, so
// the lines are unambiguous). No findings: SHA-256 of nothing.
func FindingsDigest(findings []FindingRecord) string {
	lines := make([][]byte, len(findings))
	var e Encoder
	for i, f := range findings {
		e.begin(`"auditdb/finding/v1"`)
		e.int(int64(f.ChainID))
		optInt(&e, f.ChainSeq)
		optInt(&e, f.RowID)
		e.str([]byte(f.Kind))
		e.str([]byte(f.Detail))
		lines[i] = bytes.Clone(e.end())
	}
	slices.SortFunc(lines, bytes.Compare)
	h := sha256.New()
	for _, l := range lines {
		h.Write(l)
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func optInt(e *Encoder, v *int64) {
	if v == nil {
		e.null()
		return
	}
	e.int(*v)
}

// RunSeal is what a verification run's MAC covers.
type RunSeal struct {
	ID             int64
	Mode           string // full or incremental
	Status         string // intact or tampered
	StartedAtUS    int64  // started_at, microseconds since 1970-01-01T00:00:00Z
	FinishedAtUS   int64  // finished_at, likewise
	Chains         []int32
	RowsChecked    int64
	FindingsCount  int
	FindingsDigest string // FindingsDigest of the run's rows in audit.verification_findings
}

// RunSealMessage returns 'auditdb/verification-run/v1\n' || id || '\n' ||
// mode || '\n' || status || '\n' || started_at_us || '\n' ||
// finished_at_us || '\n' || chains || '\n' || rows_checked || '\n' ||
// findings_count || '\n' || findings_digest, where chains are the run's
// chain ids in decimal, comma-separated, in the order stored.
func RunSealMessage(r RunSeal) []byte {
	chains := make([]string, len(r.Chains))
	for i, c := range r.Chains {
		chains[i] = strconv.Itoa(int(c))
	}
	return []byte("auditdb/verification-run/v1\n" + strconv.FormatInt(r.ID, 10) + "\n" + r.Mode + "\n" + r.Status + "\n" +
		strconv.FormatInt(r.StartedAtUS, 10) + "\n" + strconv.FormatInt(r.FinishedAtUS, 10) + "\n" +
		strings.Join(chains, ",") + "\n" + strconv.FormatInt(r.RowsChecked, 10) + "\n" +
		strconv.Itoa(r.FindingsCount) + "\n" + r.FindingsDigest)
}

// RunMAC returns hex HMAC-SHA-256(key, RunSealMessage(r)).
func RunMAC(key []byte, r RunSeal) string {
	m := hmac.New(sha256.New, key)
	m.Write(RunSealMessage(r))
	return hex.EncodeToString(m.Sum(nil))
}

// sealRun writes the MAC of the run just recorded in tx, over what the
// table now holds for it, so that a reader recomputes exactly that.
func sealRun(ctx context.Context, tx pgx.Tx, runID int64, rep *Report, keyID string, key []byte) error {
	var (
		r                 = RunSeal{ID: runID}
		started, finished time.Time
	)
	if err := tx.QueryRow(ctx, `SELECT mode, status, started_at, finished_at, chains, rows_checked, findings_count
		FROM audit.verification_runs WHERE id = $1`, runID).
		Scan(&r.Mode, &r.Status, &started, &finished, &r.Chains, &r.RowsChecked, &r.FindingsCount); err != nil {
		return fmt.Errorf("seal run: %w", err)
	}
	r.StartedAtUS, r.FinishedAtUS = started.UnixMicro(), finished.UnixMicro()
	records := make([]FindingRecord, len(rep.Findings))
	for i, f := range rep.Findings {
		records[i] = recordOf(f)
	}
	r.FindingsDigest = FindingsDigest(records)
	if _, err := tx.Exec(ctx, `UPDATE audit.verification_runs SET key_id = $2, mac = $3 WHERE id = $1`,
		runID, keyID, RunMAC(key, r)); err != nil {
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
func CheckRunSeals(ctx context.Context, q Querier, keys Keyring) ([]RunProblem, error) {
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
	findings := map[int64][]FindingRecord{}
	rows, err = q.Query(ctx, `SELECT run_id, chain_id, chain_seq, row_id, kind, detail FROM audit.verification_findings
		WHERE run_id >= $1`, *sealsFrom)
	if err != nil {
		return nil, fmt.Errorf("check run seals: %w", err)
	}
	var f FindingRecord
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
		r                 RunSeal
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
		r.FindingsDigest = FindingsDigest(findings[r.ID])
		if !hmac.Equal([]byte(RunMAC(keys[*keyID], r)), []byte(*mac)) {
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
