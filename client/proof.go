package client

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditdb/auditdb/anchor"
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
	// Anchor, when the proof was built WithAnchors, is the signed anchor
	// the proof ends at: the chain's anchored head is (HeadSeq, HeadHash),
	// and VerifyAnchoredProof checks it with public keys only.
	Anchor *ProofAnchor `json:"anchor,omitempty"`
}

// ProofAnchor is what links a chain position to a signed anchor bundle
// (INTEGRITY.md, "Inclusion against an anchor"): the fields of the signed
// message, the chain's leaf's RFC 6962 audit path to the root, and the
// bundle's signatures with its witnesses' cosignatures.
type ProofAnchor struct {
	Log    string `json:"log"`
	Bundle int64  `json:"bundle"`
	Prev   string `json:"prev"`
	TimeUS int64  `json:"time_us"`
	Chains int    `json:"chains"`
	Root   string `json:"root"`
	// Path is the audit path of leaf(chain) (hex, bottom up).
	Path       []string                    `json:"path"`
	Signatures []integrity.AnchorSignature `json:"signatures"`
}

// ProofOption changes how InclusionProof builds a proof.
type ProofOption func(*proofOptions)

type proofOptions struct {
	anchors anchor.Sink
}

// WithAnchors makes the proof end at the first anchor bundle in sink that
// anchors the event's chain at or after the event, instead of at a
// checkpoint: then only the anchor's public keys are needed to check it
// (VerifyAnchoredProof). It fails when no bundle covers the event yet.
func WithAnchors(sink anchor.Sink) ProofOption {
	return func(o *proofOptions) { o.anchors = sink }
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
	// Anchored: the proof ends at an anchor bundle (AnchorBundle) whose
	// signatures verified under AnchorSignatures distinct known keys.
	Anchored         bool  `json:"anchored,omitempty"`
	AnchorBundle     int64 `json:"anchor_bundle,omitempty"`
	AnchorSignatures int   `json:"anchor_signatures,omitempty"`
}

// ErrProofInvalid is wrapped by every VerifyInclusionProof failure.
var ErrProofInvalid = errors.New("inclusion proof does not verify")

// InclusionProof builds the proof for event id. Rows between the event and
// its checkpoint that retention has archived make the proof impossible from
// the database alone; the error says so.
func (c *Client) InclusionProof(ctx context.Context, id int64, opts ...ProofOption) (*InclusionProof, error) {
	var o proofOptions
	for _, opt := range opts {
		opt(&o)
	}
	var p *InclusionProof
	// One snapshot: the row, its successors and the checkpoint agree.
	err := pgx.BeginTxFunc(ctx, c.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var end *anchorEnd
		if o.anchors != nil {
			var err error
			if end, err = findAnchor(ctx, tx, o.anchors, id); err != nil {
				return err
			}
		}
		var err error
		p, err = buildProof(ctx, tx, id, end)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// anchorEnd is the anchored head a proof ends at.
type anchorEnd struct {
	head   integrity.AnchorHead
	anchor ProofAnchor
}

// findAnchor picks the first bundle in sink anchoring the event's chain at
// or after its seq. The bundle is only read here; VerifyAnchoredProof
// checks its signatures.
func findAnchor(ctx context.Context, tx pgx.Tx, sink anchor.Sink, id int64) (*anchorEnd, error) {
	var (
		chain int16
		seq   int64
		logID string
	)
	err := tx.QueryRow(ctx, `SELECT chain_id, chain_seq, (SELECT value FROM audit.settings WHERE key = 'log_id')
		FROM audit.audit_log WHERE id = $1`, id).Scan(&chain, &seq, &logID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w (id %d)", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("client: inclusion proof of event %d: %w", id, err)
	}
	contents, err := anchor.Read(ctx, sink, logID)
	if err != nil {
		return nil, fmt.Errorf("client: inclusion proof of event %d: %w", id, err)
	}
	for _, o := range contents.Bundles {
		b, err := integrity.ParseBundle(o.Data)
		if err != nil || int(chain) >= len(b.Heads) || b.Heads[chain].Seq < seq {
			continue
		}
		leaves := b.Leaves()
		end := &anchorEnd{head: b.Heads[chain], anchor: ProofAnchor{Log: b.Log, Bundle: b.Bundle, Prev: b.Prev, TimeUS: b.TimeUS,
			Chains: len(b.Heads), Root: b.Root, Signatures: append([]integrity.AnchorSignature(nil), b.Signatures...)}}
		for _, h := range integrity.MerklePath(leaves, int(chain)) {
			end.anchor.Path = append(end.anchor.Path, hex.EncodeToString(h[:]))
		}
		for _, c := range o.Cosigs {
			if cs, err := integrity.ParseCosignature(c.Data); err == nil && cs.MessageSHA256 == b.MessageSHA256() {
				end.anchor.Signatures = append(end.anchor.Signatures, integrity.AnchorSignature{KeyID: cs.KeyID, Sig: cs.Sig})
			}
		}
		return end, nil
	}
	return nil, fmt.Errorf("client: inclusion proof of event %d: no anchor bundle in %s covers chain %d seq %d yet", id, sink.Location(), chain, seq)
}

func buildProof(ctx context.Context, tx pgx.Tx, id int64, end *anchorEnd) (*InclusionProof, error) {
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
	case end != nil:
		// the proof ends at the anchored head; a checkpoint there too is kept
		p.Anchor = &end.anchor
		p.HeadSeq, p.HeadHash = end.head.Seq, end.head.Hash
		if err == nil && cp.ChainSeq == end.head.Seq {
			p.Checkpoint = &cp
		} else if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("client: inclusion proof of event %d: checkpoint: %w", id, err)
		}
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
	res, err := verifyProofChain(p)
	if err != nil {
		return ProofResult{}, err
	}
	if cp := p.Checkpoint; cp != nil {
		res.Sealed = true
		if len(keys) > 0 {
			seal := integrity.Checkpoint{ChainID: p.Row.ChainID, Seq: cp.ChainSeq, Hash: cp.Hash, SealedAt: cp.SealedAt, KeyID: cp.KeyID, MAC: cp.MAC}
			switch seal.CheckSeal(keys) {
			case integrity.SealUnknownKey:
				return proofFail("checkpoint names key id %s, which is not in the keyring", cp.KeyID)
			case integrity.SealWrongMAC:
				return proofFail("checkpoint MAC does not verify under key %s", cp.KeyID)
			}
			res.MACChecked = true
		}
	}
	return res, nil
}

// VerifyAnchoredProof checks a proof that ends at an anchor with public
// keys only, no database and no seal key: the row and the chain up to the
// anchored head as VerifyInclusionProof does, then leaf(chain) through the
// audit path to the root, the signed message rebuilt from the anchor's
// fields, and its signatures: every one must be by a key in keys and
// verify, and at least minSignatures distinct keys (at least 1) must have
// signed. Every failure wraps ErrProofInvalid.
func VerifyAnchoredProof(p *InclusionProof, keys integrity.AnchorKeys, minSignatures int) (ProofResult, error) {
	res, err := verifyProofChain(p)
	if err != nil {
		return ProofResult{}, err
	}
	a := p.Anchor
	if a == nil {
		return proofFail("the proof does not end at an anchor")
	}
	chain := int(p.Row.ChainID)
	if chain >= a.Chains || !integrity.ValidLogID(a.Log) {
		return proofFail("the anchor does not cover chain %d", chain)
	}
	path := make([][32]byte, len(a.Path))
	for i, s := range a.Path {
		if path[i], err = hash32(s); err != nil {
			return proofFail("anchor path %d: %v", i, err)
		}
	}
	root, err := hash32(a.Root)
	if err != nil {
		return proofFail("anchor root: %v", err)
	}
	leaf := integrity.AnchorLeaf(p.Row.ChainID, p.HeadSeq, p.HeadHash)
	if !integrity.VerifyMerklePath(leaf, chain, a.Chains, path, root) {
		return proofFail("leaf(%d) at seq %d does not lead to the anchor's root", chain, p.HeadSeq)
	}
	msg := integrity.AnchorMessage(a.Log, a.Bundle, a.Prev, a.TimeUS, a.Chains, a.Root)
	valid := map[string]bool{}
	for _, s := range a.Signatures {
		if why := keys.VerifySignature(msg, s); why != "" {
			return proofFail("anchor bundle %d: %s", a.Bundle, why)
		}
		valid[s.KeyID] = true
	}
	if len(valid) < max(minSignatures, 1) {
		return proofFail("anchor bundle %d: %d signature(s) by known keys, %d required", a.Bundle, len(valid), max(minSignatures, 1))
	}
	res.Anchored, res.AnchorBundle, res.AnchorSignatures = true, a.Bundle, len(valid)
	res.Sealed = p.Checkpoint != nil
	return res, nil
}

func proofFail(format string, args ...any) (ProofResult, error) {
	return ProofResult{}, fmt.Errorf("%w: "+format, append([]any{ErrProofInvalid}, args...)...)
}

// verifyProofChain checks the row and the chain from it to the proof's
// end: the PII against the commitment (unless erased), the row hash, the
// link from PrevHash, the following row hashes up to (HeadSeq, HeadHash),
// and that a checkpoint, if any, is where the proof ends.
func verifyProofChain(p *InclusionProof) (ProofResult, error) {
	var res ProofResult
	fail := proofFail
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
	if cp := p.Checkpoint; cp != nil && (cp.ChainSeq != p.HeadSeq || cp.Hash != p.HeadHash) {
		return fail("the checkpoint is not where the proof ends")
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
