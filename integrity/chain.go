package integrity

import (
	"bytes"
	"crypto/hmac"
	"encoding/hex"
	"fmt"
	"sort"
	"time"
)

// Checkpoint is a sealed chain position: a row of
// audit.integrity_checkpoints (INTEGRITY.md, Checkpoints).
type Checkpoint struct {
	ChainID  int16
	Seq      int64
	Hash     string // hex chain hash at Seq
	SealedAt time.Time
	KeyID    string
	MAC      string
}

// SealCheck is the outcome of checking a seal under a keyring.
type SealCheck int

// The outcomes of a seal check.
const (
	SealValid SealCheck = iota
	SealUnknownKey
	SealWrongMAC
)

// CheckSeal checks the checkpoint's MAC under the keyring's key of its key
// id. It is the one place a checkpoint MAC is checked: the verifier and
// inclusion proofs both call it.
func (cp *Checkpoint) CheckSeal(keys Keyring) SealCheck {
	key, ok := keys[cp.KeyID]
	if !ok {
		return SealUnknownKey
	}
	if !hmac.Equal([]byte(CheckpointMAC(key, cp.ChainID, cp.Seq, cp.Hash, cp.SealedAt.UnixMicro())), []byte(cp.MAC)) {
		return SealWrongMAC
	}
	return SealValid
}

// Redaction is a sealed redaction record of one row (audit.redactions).
type Redaction struct {
	RowID       int64
	ChainID     int16
	Seq         int64
	CreatedAtUS int64
	Reason      string
	KeyID       string
	MAC         string
}

// SealVerifies reports whether the record's MAC verifies under keys over
// piiAfterHex, the RemainingPII of the row as it is now.
func (r *Redaction) SealVerifies(keys Keyring, piiAfterHex string) bool {
	key, ok := keys[r.KeyID]
	return ok && hmac.Equal([]byte(RedactionMAC(key, r.RowID, r.ChainID, r.Seq, r.CreatedAtUS, piiAfterHex, r.Reason)), []byte(r.MAC))
}

// ChainInput is what a ChainVerifier checks one chain's rows against,
// wherever they come from (a database, an archive, a test).
type ChainInput struct {
	// ChainID is the chain the rows belong to.
	ChainID int16
	// Checkpoints of the chain after StartSeq, ascending by seq.
	Checkpoints []Checkpoint
	// Manifests of the chain, ascending by first seq. With Keys, one whose
	// seal does not verify covers nothing and is a checkpoint_forged.
	Manifests []ArchiveManifest
	// Redactions by row id.
	Redactions map[int64][]Redaction
	// Keys checks MACs. Defaults to none (MACs not checked).
	Keys Keyring
	// StartSeq and StartHash seed the chain: the rows begin after StartSeq,
	// whose chain hash is StartHash. Defaults to 0 and the chain's genesis.
	StartSeq  int64
	StartHash [32]byte
	// Anchors are the chain positions that trusted anchor bundles name,
	// ascending by seq (AnchorReport.Heads). The chain hash at each must be
	// the anchor's (anchor_mismatch); the chain must reach each
	// (tail_truncated). Positions at or below StartSeq are not checked,
	// but the one at StartSeq. Defaults to none.
	Anchors []AnchoredHead
}

// ChainVerifier walks one chain's rows in chain_seq order. After a bad row
// it resumes from the row's stored hash, so one modified row is one finding
// rather than a cascade; a rewrite of everything after a row is what
// checkpoints (and anchors) catch. It is not safe for concurrent use.
type ChainVerifier struct {
	chainID  int16
	cps      []Checkpoint
	cpIdx    int
	mans     []manifestRange
	redacted map[int64][]Redaction
	keys     Keyring

	enc       Encoder
	prev      [32]byte // chain hash after lastSeq
	lastSeq   int64
	rows      int64
	cpChecked int
	findings  []Finding

	anchors          []AnchoredHead
	belowStart       []AnchoredHead
	anchorIdx        int
	anchorsChecked   int
	anchorsInArchive int
}

type manifestRange struct {
	first, last int64
	endHash     string
}

// NewChainVerifier starts a walk of in.ChainID.
func NewChainVerifier(in ChainInput) *ChainVerifier {
	v := &ChainVerifier{chainID: in.ChainID, cps: in.Checkpoints, redacted: in.Redactions, keys: in.Keys, prev: Genesis(in.ChainID)}
	v.anchors = in.Anchors
	if in.StartSeq > 0 {
		v.prev, v.lastSeq = in.StartHash, in.StartSeq
		for v.anchorIdx < len(v.anchors) && v.anchors[v.anchorIdx].Seq < in.StartSeq {
			v.anchorIdx++
		}
		v.belowStart = v.anchors[:v.anchorIdx]
	}
	// A manifest whose seal does not verify covers nothing: the seqs it
	// claims are then reported as chain_gap, besides the forged seal itself.
	for _, m := range in.Manifests {
		if len(in.Keys) > 0 && !m.SealVerifies(in.Keys) {
			v.findings = append(v.findings, Finding{ChainID: in.ChainID, ChainSeq: m.FirstSeq, Kind: CheckpointForged,
				Detail: fmt.Sprintf("archive manifest %d (chain_seq %d..%d) seal does not verify under key %s", m.ID, m.FirstSeq, m.LastSeq, m.KeyID)})
			continue
		}
		v.mans = append(v.mans, manifestRange{first: m.FirstSeq, last: m.LastSeq, endHash: m.EndHash})
	}
	if in.StartSeq > 0 {
		v.anchorsUpTo(in.StartSeq) // the seed's hash is known: compare an anchor there
	}
	return v
}

// Findings returns what the walk found so far.
func (v *ChainVerifier) Findings() []Finding { return v.findings }

// Rows returns the number of rows walked.
func (v *ChainVerifier) Rows() int64 { return v.rows }

// LastSeq returns the seq the walk reached.
func (v *ChainVerifier) LastSeq() int64 { return v.lastSeq }

// Hash returns the chain hash at LastSeq.
func (v *ChainVerifier) Hash() [32]byte { return v.prev }

// AnchorsBelowStart returns the anchored positions before StartSeq, which
// the walk does not reach: an incremental run compares them with the rows'
// stored hashes (CheckStoredAnchor), as earlier runs verified those rows.
func (v *ChainVerifier) AnchorsBelowStart() []AnchoredHead { return v.belowStart }

// CheckStoredAnchor compares an anchored position before StartSeq with the
// stored hash of the row there (found false: no row, archived or gone).
func (v *ChainVerifier) CheckStoredAnchor(a AnchoredHead, storedHash string, found bool) {
	if !found {
		if _, ok := v.manifestAt(a.Seq); ok {
			v.anchorsInArchive++
			return
		}
		v.findings = append(v.findings, Finding{ChainID: v.chainID, ChainSeq: a.Seq, Kind: TailTruncated, Bundle: a.Bundle,
			Detail: fmt.Sprintf("anchor bundle %d anchors chain_seq %d, which has no row and no archive manifest", a.Bundle, a.Seq)})
		return
	}
	v.anchorsChecked++
	if storedHash != a.Hash {
		v.findings = append(v.findings, Finding{ChainID: v.chainID, ChainSeq: a.Seq, Kind: AnchorMismatch, Bundle: a.Bundle,
			Detail: fmt.Sprintf("the stored chain hash at seq %d differs from the one anchor bundle %d signed", a.Seq, a.Bundle)})
	}
}

// AnchorsChecked returns how many anchored positions were compared with
// the chain, and how many fell inside archived ranges without their rows.
func (v *ChainVerifier) AnchorsChecked() (checked, inArchive int) {
	return v.anchorsChecked, v.anchorsInArchive
}

// CheckpointsChecked returns how many checkpoints were compared with the
// chain.
func (v *ChainVerifier) CheckpointsChecked() int { return v.cpChecked }

func (v *ChainVerifier) add(seq, rowID int64, kind Kind, detail string) {
	v.findings = append(v.findings, Finding{ChainID: v.chainID, ChainSeq: seq, RowID: rowID, Kind: kind, Detail: detail})
}

// redactionProblem says why a row without its salt is not covered by a
// sealed redaction record; "" when it is. Without keys a record's presence
// is all that can be checked; with keys one of the row's records must
// verify over the PII values the row holds now.
func (v *ChainVerifier) redactionProblem(r *Row) string {
	recs := v.redacted[r.ID]
	if len(recs) == 0 {
		return "pii_salt is missing and no redaction record covers the row"
	}
	if len(v.keys) == 0 {
		return ""
	}
	after := v.enc.RemainingPII(r)
	for _, rec := range recs {
		rec.RowID, rec.ChainID = r.ID, v.chainID
		if rec.Seq == r.ChainSeq && rec.SealVerifies(v.keys, after) {
			return ""
		}
	}
	return "pii_salt is missing and no redaction record's seal verifies over the PII values the row now holds"
}

// Row checks the next row; storedHex is its stored hash column. r is only
// read during the call.
func (v *ChainVerifier) Row(r *Row, storedHex []byte) {
	v.rows++
	var stored [32]byte
	storedOK := len(storedHex) == 64
	if storedOK {
		_, err := hex.Decode(stored[:], storedHex)
		storedOK = err == nil
	}

	if r.ChainSeq == v.lastSeq && v.lastSeq > 0 {
		v.add(r.ChainSeq, r.ID, ChainFork, "a second row with this chain_seq")
		return
	}
	linked := true
	if r.ChainSeq != v.lastSeq+1 {
		linked = v.coverGap(r.ChainSeq)
	}
	prev := v.prev

	commitment := r.PIICommitment
	modified := ""
	if r.PIISalt != nil {
		c := v.enc.PIICommitment(r, r.PIISalt)
		if !bytes.Equal(c[:], r.PIICommitment) {
			modified = "pii values or pii_commitment differ from the commitment"
			commitment = c[:]
		}
	} else if problem := v.redactionProblem(r); problem != "" {
		v.add(r.ChainSeq, r.ID, UnauthorizedRedaction, problem)
	}
	rh := v.enc.RowHash(r, commitment)
	h := ChainHash(prev, rh)
	if modified == "" && linked && (!storedOK || h != stored) {
		modified = "stored hash differs from the recomputed one"
	}
	if modified != "" {
		v.add(r.ChainSeq, r.ID, RowModified, modified)
	}
	if storedOK {
		v.prev = stored
	} else {
		v.prev = h
	}
	v.lastSeq = r.ChainSeq
	v.checkpointsUpTo(r.ChainSeq)
}

// coverGap handles seqs lastSeq+1 .. next-1 missing before a row: archive
// manifests may cover them (the chain then continues from the manifest's end
// hash, which becomes v.prev); otherwise each uncovered stretch is a
// chain_gap and the next row's link cannot be checked. It reports whether the
// next row's link can be checked.
func (v *ChainVerifier) coverGap(next int64) bool {
	from := v.lastSeq + 1
	if next < from {
		v.add(next, 0, RowModified, "chain_seq out of order")
		return false
	}
	linked := true
	for from < next {
		m, ok := v.manifestAt(from)
		if !ok {
			to := next - 1
			for _, mm := range v.mans {
				if mm.first > from && mm.first <= to {
					to = mm.first - 1
				}
			}
			v.add(from, 0, ChainGap, fmt.Sprintf("chain_seq %d..%d missing and no archive manifest covers them", from, to))
			linked = false
			from = to + 1
			continue
		}
		end := min(m.last, next-1)
		if end == m.last {
			v.crossManifest(m)
		} else {
			linked = false
			v.lastSeq = end
			v.checkpointsUpTo(end)
		}
		from = end + 1
	}
	if !linked {
		v.lastSeq = next - 1
	}
	return linked
}

// crossManifest continues the chain past the archived range m: from its
// recorded end hash, checking the checkpoints inside it.
func (v *ChainVerifier) crossManifest(m manifestRange) {
	if b, err := hex.DecodeString(m.endHash); err == nil && len(b) == 32 {
		copy(v.prev[:], b)
	}
	v.lastSeq = m.last
	v.checkpointsUpTo(m.last)
}

func (v *ChainVerifier) manifestAt(seq int64) (manifestRange, bool) {
	i := sort.Search(len(v.mans), func(i int) bool { return v.mans[i].last >= seq })
	if i < len(v.mans) && v.mans[i].first <= seq {
		return v.mans[i], true
	}
	return manifestRange{}, false
}

// checkpointsUpTo checks every checkpoint at or below seq. One at exactly
// seq is compared with the chain hash there; one that fell inside a gap was
// already reported as the gap.
func (v *ChainVerifier) checkpointsUpTo(seq int64) {
	v.anchorsUpTo(seq)
	for v.cpIdx < len(v.cps) && v.cps[v.cpIdx].Seq <= seq {
		cp := v.cps[v.cpIdx]
		v.cpIdx++
		v.checkMAC(cp)
		if cp.Seq != seq {
			continue
		}
		v.cpChecked++
		if hex.EncodeToString(v.prev[:]) != cp.Hash {
			v.add(cp.Seq, 0, CheckpointMismatch, "checkpoint hash differs from the chain at its seq (key "+cp.KeyID+")")
		}
	}
}

// anchorsUpTo compares every anchored position at or below seq with the
// chain: one at exactly seq with the chain hash there. One below it fell
// inside an archived range (the manifest's end hash is known, its rows are
// not: counted, not checked) or inside a gap (already reported).
func (v *ChainVerifier) anchorsUpTo(seq int64) {
	for v.anchorIdx < len(v.anchors) && v.anchors[v.anchorIdx].Seq <= seq {
		a := v.anchors[v.anchorIdx]
		v.anchorIdx++
		if a.Seq != seq {
			if _, ok := v.manifestAt(a.Seq); ok {
				v.anchorsInArchive++
			}
			continue
		}
		v.anchorsChecked++
		if hex.EncodeToString(v.prev[:]) != a.Hash {
			v.findings = append(v.findings, Finding{ChainID: v.chainID, ChainSeq: a.Seq, Kind: AnchorMismatch, Bundle: a.Bundle,
				Detail: fmt.Sprintf("the chain hash at seq %d differs from the one anchor bundle %d signed", a.Seq, a.Bundle)})
		}
	}
}

func (v *ChainVerifier) checkMAC(cp Checkpoint) {
	if len(v.keys) == 0 {
		return
	}
	cp.ChainID = v.chainID
	switch cp.CheckSeal(v.keys) {
	case SealUnknownKey:
		v.add(cp.Seq, 0, CheckpointForged, "checkpoint names key id "+cp.KeyID+", which is not in the keyring")
	case SealWrongMAC:
		v.add(cp.Seq, 0, CheckpointForged, "checkpoint MAC does not verify under key "+cp.KeyID)
	}
}

// Finish reports what should exist after the last row: checkpoints beyond
// it, or a head (headSeq, the chain's recorded head) ahead of it, mean rows
// were removed from the tail.
func (v *ChainVerifier) Finish(headSeq int64) {
	// Manifests may cover the chain's end: archived rows with no row left
	// after them, which coverGap (run before each row) never saw.
	for {
		m, ok := v.manifestAt(v.lastSeq + 1)
		if !ok {
			break
		}
		v.crossManifest(m)
	}
	for v.cpIdx < len(v.cps) {
		cp := v.cps[v.cpIdx]
		v.cpIdx++
		v.checkMAC(cp)
		if m, ok := v.manifestAt(cp.Seq); ok && m.last == cp.Seq {
			v.cpChecked++
			if m.endHash != cp.Hash {
				v.add(cp.Seq, 0, CheckpointMismatch, "checkpoint hash differs from the archive manifest's end hash")
			}
			continue
		}
		v.add(cp.Seq, 0, TailTruncated, fmt.Sprintf("a checkpoint seals chain_seq %d but the chain ends at %d", cp.Seq, v.lastSeq))
		// one finding for the missing tail; later checkpoints say the same
		for v.cpIdx < len(v.cps) {
			v.checkMAC(v.cps[v.cpIdx])
			v.cpIdx++
		}
	}
	if v.anchorIdx < len(v.anchors) {
		// anchored beyond the rows: the tail is gone (one finding)
		a := v.anchors[len(v.anchors)-1]
		v.anchorIdx = len(v.anchors)
		alreadyReported := false
		for _, f := range v.findings {
			alreadyReported = alreadyReported || f.Kind == TailTruncated
		}
		if !alreadyReported {
			v.findings = append(v.findings, Finding{ChainID: v.chainID, ChainSeq: a.Seq, Kind: TailTruncated, Bundle: a.Bundle,
				Detail: fmt.Sprintf("anchor bundle %d anchors chain_seq %d but the chain ends at %d", a.Bundle, a.Seq, v.lastSeq)})
		}
	}
	if headSeq > v.lastSeq {
		if m, ok := v.manifestAt(headSeq); !ok || m.last != headSeq {
			alreadyReported := false
			for _, f := range v.findings {
				alreadyReported = alreadyReported || f.Kind == TailTruncated
			}
			if !alreadyReported {
				v.add(v.lastSeq+1, 0, TailTruncated, fmt.Sprintf("audit.chain_heads says the chain reached %d but its rows end at %d", headSeq, v.lastSeq))
			}
		}
	}
}
