package integrity

import "time"

// Kind is the kind of a verification finding (INTEGRITY.md, Verification).
type Kind string

// The finding kinds.
const (
	RowModified           Kind = "row_modified"
	ChainGap              Kind = "chain_gap"
	ChainFork             Kind = "chain_fork"
	CheckpointMismatch    Kind = "checkpoint_mismatch"
	CheckpointForged      Kind = "checkpoint_forged"
	TailTruncated         Kind = "tail_truncated"
	UnauthorizedRedaction Kind = "unauthorized_redaction"
)

// Finding is one problem a verification found. It names positions, never
// row contents.
type Finding struct {
	ChainID  int16  `json:"chain_id"`
	ChainSeq int64  `json:"chain_seq"`
	RowID    int64  `json:"row_id,omitempty"`
	Kind     Kind   `json:"kind"`
	Detail   string `json:"detail"`
	// Bundle is the anchor bundle a finding about anchors concerns.
	Bundle int64 `json:"bundle,omitempty"`
}

// ChainResult summarises one chain of a run.
type ChainResult struct {
	ChainID      int16  `json:"chain_id"`
	Rows         int64  `json:"rows"`
	VerifiedSeq  int64  `json:"verified_seq"`
	VerifiedHash string `json:"verified_hash,omitempty"`
	Checkpoints  int    `json:"checkpoints_checked"`
	// FromSeq is the checkpoint an incremental run started after (0: the
	// chain was read from its first row).
	FromSeq  int64 `json:"from_seq,omitempty"`
	Findings int   `json:"findings"`
	// Anchors counts anchored positions compared with the chain;
	// AnchorsInArchive those inside an archived range, whose rows the
	// verifier did not have ("anchored in archive, not checked").
	Anchors          int `json:"anchors_checked,omitempty"`
	AnchorsInArchive int `json:"anchored_in_archive_not_checked,omitempty"`
}

// Report is the outcome of a verification run.
type Report struct {
	RunID       int64         `json:"run_id,omitempty"`
	Status      string        `json:"status"` // intact or tampered
	Mode        string        `json:"mode"`
	StartedAt   time.Time     `json:"started_at"`
	Duration    time.Duration `json:"duration_ns"`
	RowsChecked int64         `json:"rows_checked"`
	RowsPerSec  float64       `json:"rows_per_second"`
	MACsChecked bool          `json:"macs_checked"`
	Chains      []ChainResult `json:"chains"`
	Findings    []Finding     `json:"findings"`
	// Anchors summarises the anchor bundles checked, when the run had a
	// sink of them.
	Anchors *AnchorReport `json:"anchors,omitempty"`
}

// Intact reports whether the run found nothing.
func (r *Report) Intact() bool { return len(r.Findings) == 0 }

// Keyring maps seal key ids to HMAC keys. Verification without keys checks
// everything but the MACs.
type Keyring map[string][]byte
