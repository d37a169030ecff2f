package integrity

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// A finished verification run is sealed like a checkpoint: the verifier
// writes a MAC under the active seal key over the run's result into
// audit.verification_runs (key_id, mac; step 0019), in the transaction
// that records the result. audit_maintainer may UPDATE that table (it
// records runs), so without the seal it could flip a tampered run to
// intact and every reader of the table would believe it. The database
// side (writing and checking seals) is internal/verifier's.

// FindingRecord is one row of audit.verification_findings as stored:
// chain_seq and row_id may be NULL.
type FindingRecord struct {
	ChainID  int16
	ChainSeq *int64
	RowID    *int64
	Kind     string
	Detail   string
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
