package client

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
)

// InclusionProofVersion is the format of InclusionProof.
const InclusionProofVersion = 1

// InclusionProof shows that one event is part of its hash chain up to a
// sealed checkpoint (or, before the next seal, up to the chain's head). It
// carries the row's hashed fields in the exact forms INTEGRITY.md hashes, the
// chain hash before the row, the row hashes of the rows after it up to the
// checkpoint, and the checkpoint. [VerifyInclusionProof] checks it with no
// database. It serialises to JSON as is.
type InclusionProof struct {
	Version int      `json:"version"`
	Row     ProofRow `json:"row"`
	// PrevHash is the chain hash just before the row (hex); for the first row
	// of a chain it is the chain's genesis hash.
	PrevHash string `json:"prev_hash"`
	// Following are the row hashes (hex) of the rows after this one, in chain
	// order, up to and including the checkpoint's (or head's) seq.
	Following []string `json:"following_row_hashes"`
	// Checkpoint is the first checkpoint at or after the row. Nil when none
	// seals the row yet: the proof then ends at Head.
	Checkpoint *ProofCheckpoint `json:"checkpoint,omitempty"`
	// Head is where the proof ends: the checkpoint's seq and hash, or the
	// chain head's when not sealed yet.
	HeadSeq  int64  `json:"head_seq"`
	HeadHash string `json:"head_hash"`
}

// ProofRow holds a row's columns in the forms INTEGRITY.md hashes, the
// same as a retention archive's lines: timestamps in Unix microseconds
// (with an RFC 3339 copy for people), source_ip as PostgreSQL prints it,
// details as PostgreSQL's text of the jsonb value, bytea as hex; nil
// pointers are SQL NULLs. PIISalt is nil once the row's PII was erased,
// when the PII fields can no longer be checked but the row still can.
type ProofRow = integrity.ArchiveRow

// ProofCheckpoint is an integrity_checkpoints row.
type ProofCheckpoint struct {
	ChainSeq int64     `json:"chain_seq"`
	Hash     string    `json:"hash"`
	SealedAt time.Time `json:"sealed_at"`
	KeyID    string    `json:"key_id"`
	MAC      string    `json:"mac"`
}

// ProofResult is what VerifyInclusionProof established.
type ProofResult struct {
	// Sealed: the proof ends at a checkpoint. False: at the chain head,
	// which the next seal will cover.
	Sealed bool `json:"sealed"`
	// MACChecked: the checkpoint's MAC verified under the given key.
	MACChecked bool `json:"mac_checked"`
	// PIIChecked: the PII fields match the commitment (false once erased).
	PIIChecked bool `json:"pii_checked"`
}

// ErrProofInvalid is wrapped by every VerifyInclusionProof failure.
var ErrProofInvalid = errors.New("inclusion proof does not verify")

// InclusionProof builds the proof for event id. Rows between the event and
// its checkpoint that retention has archived make the proof impossible from
// the database alone; the error says so.
func (c *Client) InclusionProof(ctx context.Context, id int64) (*InclusionProof, error) {
	var p *InclusionProof
	// One snapshot: the row, its successors and the checkpoint agree.
	err := pgx.BeginTxFunc(ctx, c.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		p, err = buildProof(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func buildProof(ctx context.Context, tx pgx.Tx, id int64) (*InclusionProof, error) {
	p := &InclusionProof{Version: InclusionProofVersion}
	var scan verifier.ArchiveRowScanner
	err := tx.QueryRow(ctx, `SELECT `+verifier.ArchiveRowColumns+` FROM audit.audit_log WHERE id = $1`, id).Scan(scan.Targets()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w (id %d)", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("client: inclusion proof of event %d: %w", id, err)
	}
	p.Row = *scan.Row()
	r := &p.Row

	if r.ChainSeq == 1 {
		g := integrity.Genesis(r.ChainID)
		p.PrevHash = hex.EncodeToString(g[:])
	} else {
		// the row before, or the end of the archive manifest that covers it
		err = tx.QueryRow(ctx, `SELECT hash FROM audit.audit_log WHERE chain_id = $1 AND chain_seq = $2
			UNION ALL SELECT end_hash FROM audit.archive_manifests WHERE chain_id = $1 AND last_seq = $2
			LIMIT 1`, r.ChainID, r.ChainSeq-1).Scan(&p.PrevHash)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("client: inclusion proof of event %d: chain %d has no row or archive manifest at seq %d", id, r.ChainID, r.ChainSeq-1)
		}
		if err != nil {
			return nil, fmt.Errorf("client: inclusion proof of event %d: %w", id, err)
		}
	}

	var cp ProofCheckpoint
	err = tx.QueryRow(ctx, `SELECT chain_seq, hash, sealed_at, key_id, mac FROM audit.integrity_checkpoints
		WHERE chain_id = $1 AND chain_seq >= $2 ORDER BY chain_seq, id LIMIT 1`, r.ChainID, r.ChainSeq).
		Scan(&cp.ChainSeq, &cp.Hash, &cp.SealedAt, &cp.KeyID, &cp.MAC)
	switch {
	case err == nil:
		p.Checkpoint = &cp
		p.HeadSeq, p.HeadHash = cp.ChainSeq, cp.Hash
	case errors.Is(err, pgx.ErrNoRows):
		if err := tx.QueryRow(ctx, `SELECT chain_seq, hash FROM audit.audit_log WHERE chain_id = $1
			ORDER BY chain_seq DESC LIMIT 1`, r.ChainID).Scan(&p.HeadSeq, &p.HeadHash); err != nil {
			return nil, fmt.Errorf("client: inclusion proof of event %d: chain head: %w", id, err)
		}
	default:
		return nil, fmt.Errorf("client: inclusion proof of event %d: checkpoint: %w", id, err)
	}

	rows, err := tx.Query(ctx, `SELECT chain_seq, encode(audit.row_hash(id, chain_id, chain_seq, "timestamp", recorded_at,
			action, status, principal_type, organization_id, target_resource_type, event_version,
			correlation_id, data_classification, retention_policy, processing_latency, ttl, pii_commitment), 'hex')
		FROM audit.audit_log WHERE chain_id = $1 AND chain_seq > $2 AND chain_seq <= $3 ORDER BY chain_seq`,
		r.ChainID, r.ChainSeq, p.HeadSeq)
	if err != nil {
		return nil, fmt.Errorf("client: inclusion proof of event %d: %w", id, err)
	}
	want := r.ChainSeq + 1
	var seq int64
	var rh string
	_, err = pgx.ForEachRow(rows, []any{&seq, &rh}, func() error {
		if seq != want {
			return fmt.Errorf("chain %d: seq %d is not in audit_log (archived or missing)", r.ChainID, want)
		}
		want++
		p.Following = append(p.Following, rh)
		return nil
	})
	if err == nil && want != p.HeadSeq+1 {
		err = fmt.Errorf("chain %d: seq %d is not in audit_log (archived or missing)", r.ChainID, want)
	}
	if err != nil {
		return nil, fmt.Errorf("client: inclusion proof of event %d: %w", id, err)
	}
	return p, nil
}

// VerifyInclusionProof checks p without a database: the PII fields against
// the commitment (unless erased), the row hash, the link from PrevHash to the
// stored hash, the chain from the row to the checkpoint, and, when keys has
// the checkpoint's key id, the checkpoint's MAC. keys may be nil (the MAC is
// then not checked, which ProofResult says). Every failure wraps
// ErrProofInvalid and names the step.
func VerifyInclusionProof(p *InclusionProof, keys map[string][]byte) (ProofResult, error) {
	var res ProofResult
	fail := func(format string, args ...any) (ProofResult, error) {
		return ProofResult{}, fmt.Errorf("%w: "+format, append([]any{ErrProofInvalid}, args...)...)
	}
	if p == nil || p.Version != InclusionProofVersion {
		return fail("unknown proof version")
	}
	r := &p.Row
	row, err := r.Row()
	if err != nil {
		return fail("%v", err)
	}
	if len(row.PIICommitment) != 32 {
		return fail("pii_commitment is not 32 bytes")
	}
	commitment := row.PIICommitment
	var enc integrity.Encoder
	if row.PIISalt != nil {
		got := enc.PIICommitment(&row, row.PIISalt)
		if !hmac.Equal(got[:], commitment) {
			return fail("the PII fields do not match pii_commitment")
		}
		res.PIIChecked = true
	}
	prev, err := hash32(p.PrevHash)
	if err != nil {
		return fail("prev_hash: %v", err)
	}
	if r.ChainSeq == 1 && prev != integrity.Genesis(r.ChainID) {
		return fail("prev_hash of the first row must be chain %d's genesis hash", r.ChainID)
	}
	h := integrity.ChainHash(prev, enc.RowHash(&row, commitment))
	if hex.EncodeToString(h[:]) != r.Hash {
		return fail("row %d: recomputed hash differs from the stored hash", r.ID)
	}
	if int64(len(p.Following)) != p.HeadSeq-r.ChainSeq {
		return fail("%d following row hashes for seqs %d..%d", len(p.Following), r.ChainSeq+1, p.HeadSeq)
	}
	for i, s := range p.Following {
		rh, err := hash32(s)
		if err != nil {
			return fail("following row hash %d: %v", i, err)
		}
		h = integrity.ChainHash(h, rh)
	}
	if hex.EncodeToString(h[:]) != p.HeadHash {
		return fail("the chain from row %d does not reach the hash at seq %d", r.ID, p.HeadSeq)
	}
	if cp := p.Checkpoint; cp != nil {
		if cp.ChainSeq != p.HeadSeq || cp.Hash != p.HeadHash {
			return fail("the checkpoint is not where the proof ends")
		}
		res.Sealed = true
		if len(keys) > 0 {
			seal := integrity.Checkpoint{ChainID: r.ChainID, Seq: cp.ChainSeq, Hash: cp.Hash, SealedAt: cp.SealedAt, KeyID: cp.KeyID, MAC: cp.MAC}
			switch seal.CheckSeal(keys) {
			case integrity.SealUnknownKey:
				return fail("checkpoint names key id %s, which is not in the keyring", cp.KeyID)
			case integrity.SealWrongMAC:
				return fail("checkpoint MAC does not verify under key %s", cp.KeyID)
			}
			res.MACChecked = true
		}
	}
	return res, nil
}

func hash32(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return h, errors.New("not 32 bytes of hex")
	}
	copy(h[:], b)
	return h, nil
}
