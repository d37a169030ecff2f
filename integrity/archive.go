package integrity

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"time"
)

// Archive files (INTEGRITY.md, "Retention and redaction") are gzip-compressed
// JSON lines. Line 1 is an ArchiveHeader naming, per chain, the seq range the
// file holds, the chain hash before it and the chain hash at its end; every
// further line is one ArchiveRow with every column of audit_log, ranges in
// header order, seqs ascending. Everything a verifier needs to recompute the
// commitments, row hashes and chain hashes is in the file: timestamps as
// integer microseconds, source_ip in its abbrev() form, details as the exact
// text PostgreSQL printed for the jsonb value, bytea as lowercase hex.
const (
	ArchiveFormat  = "auditdb-archive"
	ArchiveVersion = 1
)

// ArchiveRange is one chain's contiguous seq range in an archive.
type ArchiveRange struct {
	ChainID  int16 `json:"chain_id"`
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
	RowCount int64 `json:"row_count"`
	// StartHash is the chain hash at FirstSeq-1 (genesis for seq 1): the end
	// hash of the chain's previous manifest.
	StartHash string `json:"start_hash"`
	// EndHash is the chain hash at LastSeq, the one the manifest seals.
	EndHash string `json:"end_hash"`
}

// ArchiveHeader is the first line of an archive file.
type ArchiveHeader struct {
	Format      string         `json:"format"`
	Version     int            `json:"version"`
	HashVersion int            `json:"hash_version"`
	CreatedAt   time.Time      `json:"created_at"`
	Ranges      []ArchiveRange `json:"ranges"`
}

// ArchiveRow is one audit_log row as an archive line. Nil pointers are SQL
// NULL. The *_us fields are what the row hash uses; Timestamp and
// RecordedAt repeat them in RFC 3339 for people.
type ArchiveRow struct {
	ID                 int64   `json:"id"`
	ChainID            int16   `json:"chain_id"`
	ChainSeq           int64   `json:"chain_seq"`
	Timestamp          string  `json:"timestamp"`
	TimestampUS        int64   `json:"timestamp_us"`
	RecordedAt         string  `json:"recorded_at"`
	RecordedAtUS       int64   `json:"recorded_at_us"`
	Action             string  `json:"action"`
	Status             string  `json:"status"`
	PrincipalType      *string `json:"principal_type"`
	OrganizationID     *string `json:"organization_id"`
	TargetResourceType *string `json:"target_resource_type"`
	EventVersion       *string `json:"event_version"`
	CorrelationID      *string `json:"correlation_id"`
	DataClassification string  `json:"data_classification"`
	RetentionPolicy    string  `json:"retention_policy"`
	ProcessingLatency  *int32  `json:"processing_latency"`
	TTL                *string `json:"ttl"`
	PrincipalID        *string `json:"principal_id"`
	TargetResourceID   *string `json:"target_resource_id"`
	SourceIP           *string `json:"source_ip"` // abbrev(source_ip)
	OutcomeDescription *string `json:"outcome_description"`
	Details            *string `json:"details"` // details::text, exactly as PostgreSQL printed it
	PIISalt            *string `json:"pii_salt"`
	PIICommitment      string  `json:"pii_commitment"`
	Hash               string  `json:"hash"`
	HashAlgorithm      string  `json:"hash_algorithm"`
	HashVersion        int16   `json:"hash_version"`
	ArchivedAt         *string `json:"archived_at"`
}

// FormatArchiveTime is the RFC 3339 form archive lines use for people
// (microseconds, UTC).
func FormatArchiveTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
}

func optBytes(s *string) []byte {
	if s == nil {
		return nil
	}
	return append(make([]byte, 0, len(*s)), *s...)
}

// Row converts the line into the hashing form. It fails on malformed hex.
func (a *ArchiveRow) Row() (Row, error) {
	r := Row{
		ID: a.ID, ChainID: a.ChainID, ChainSeq: a.ChainSeq,
		TimestampUS: a.TimestampUS, RecordedAtUS: a.RecordedAtUS,
		Action: optBytes(&a.Action), Status: optBytes(&a.Status),
		PrincipalType: optBytes(a.PrincipalType), OrganizationID: optBytes(a.OrganizationID),
		TargetResourceType: optBytes(a.TargetResourceType), EventVersion: optBytes(a.EventVersion),
		CorrelationID: optBytes(a.CorrelationID), DataClassification: optBytes(&a.DataClassification),
		RetentionPolicy: optBytes(&a.RetentionPolicy), TTL: optBytes(a.TTL),
		PrincipalID: optBytes(a.PrincipalID), TargetResourceID: optBytes(a.TargetResourceID),
		SourceIP: optBytes(a.SourceIP), OutcomeDescription: optBytes(a.OutcomeDescription),
		Details: optBytes(a.Details),
	}
	if a.ProcessingLatency != nil {
		r.HasLatency, r.ProcessingLatency = true, *a.ProcessingLatency
	}
	var err error
	if r.PIICommitment, err = hex.DecodeString(a.PIICommitment); err != nil {
		return r, errors.New("pii_commitment is not hex")
	}
	if a.PIISalt != nil {
		if r.PIISalt, err = hex.DecodeString(*a.PIISalt); err != nil {
			return r, errors.New("pii_salt is not hex")
		}
	}
	return r, nil
}

// ArchiveWriter writes an archive file. It checks every row against the
// header as it goes: a row that does not continue its range's chain, or a
// range that does not end at the header's end hash, fails the write, so a
// chain that was tampered with is never archived (and so never deleted).
type ArchiveWriter struct {
	digest hash.Hash
	gz     *gzip.Writer
	enc    *json.Encoder
	hdr    ArchiveHeader
	chain  archiveChain
	closed bool
}

// NewArchiveWriter writes hdr as the first line of an archive going to w.
func NewArchiveWriter(w io.Writer, hdr ArchiveHeader) (*ArchiveWriter, error) {
	hdr.Format, hdr.Version, hdr.HashVersion = ArchiveFormat, ArchiveVersion, HashVersion
	if len(hdr.Ranges) == 0 {
		return nil, errors.New("archive: no ranges")
	}
	aw := &ArchiveWriter{digest: sha256.New(), hdr: hdr}
	aw.gz = gzip.NewWriter(io.MultiWriter(w, aw.digest))
	aw.enc = json.NewEncoder(aw.gz)
	aw.enc.SetEscapeHTML(false)
	if err := aw.enc.Encode(hdr); err != nil {
		return nil, fmt.Errorf("archive: header: %w", err)
	}
	if err := aw.chain.start(hdr.Ranges, 0); err != nil {
		return nil, err
	}
	return aw, nil
}

// WriteRow appends the next row in header order.
func (aw *ArchiveWriter) WriteRow(a *ArchiveRow) error {
	if _, problem := aw.chain.next(a); problem != "" {
		return fmt.Errorf("archive: chain %d seq %d (row id %d): %s", a.ChainID, a.ChainSeq, a.ID, problem)
	}
	if p := aw.chain.problems(); len(p) > 0 {
		return errors.New("archive: " + details(p))
	}
	if err := aw.enc.Encode(a); err != nil {
		return fmt.Errorf("archive: write: %w", err)
	}
	return nil
}

// Close checks that every range is complete, flushes the compressed stream
// and returns the hex SHA-256 of the file's bytes (what the manifest records).
func (aw *ArchiveWriter) Close() (string, error) {
	if aw.closed {
		return "", errors.New("archive: closed twice")
	}
	aw.closed = true
	if p := aw.chain.finish(); len(p) > 0 {
		return "", errors.New("archive: " + details(p))
	}
	if err := aw.gz.Close(); err != nil {
		return "", fmt.Errorf("archive: %w", err)
	}
	return hex.EncodeToString(aw.digest.Sum(nil)), nil
}

// archiveChain walks the rows of an archive against its header.
type archiveChain struct {
	// anchored: positions anchor bundles name, by chain and seq; each one a
	// row of the archive reaches is compared with its chain hash
	anchored       map[int16]map[int64][]AnchoredHead
	anchorFindings []Finding
	anchorsChecked int
	ranges         []ArchiveRange
	idx            int   // current range
	seq            int64 // last seq seen in it
	rows           int64
	prev           [32]byte // recomputed chain hash at seq
	enc            Encoder
	ended          []Finding // problems found at the ends of ranges
}

func (c *archiveChain) start(ranges []ArchiveRange, idx int) error {
	c.ranges, c.idx, c.rows = ranges, idx, 0
	if idx >= len(ranges) {
		return nil
	}
	rg := ranges[idx]
	c.seq = rg.FirstSeq - 1
	b, err := hex.DecodeString(rg.StartHash)
	if err != nil || len(b) != 32 || rg.FirstSeq < 1 || rg.LastSeq < rg.FirstSeq {
		return fmt.Errorf("archive header: range %d (chain %d): bad seqs or start hash", idx+1, rg.ChainID)
	}
	if rg.FirstSeq == 1 && Genesis(rg.ChainID) != [32]byte(b) {
		return fmt.Errorf("archive header: range %d (chain %d) starts at seq 1 but not at the chain's genesis hash", idx+1, rg.ChainID)
	}
	copy(c.prev[:], b)
	return nil
}

// next checks one row and returns what is wrong with it, or "".
// A row whose stored hash differs is reported, and the walk resumes from the
// stored hash so that one bad line is one finding.
func (c *archiveChain) next(a *ArchiveRow) (Kind, string) {
	for c.idx < len(c.ranges) && c.seq == c.ranges[c.idx].LastSeq {
		c.endRange()
	}
	if c.idx >= len(c.ranges) {
		return RowModified, "row beyond the ranges the header names"
	}
	rg := c.ranges[c.idx]
	if a.ChainID != rg.ChainID || a.ChainSeq != c.seq+1 {
		want := fmt.Sprintf("chain %d seq %d", rg.ChainID, c.seq+1)
		if a.ChainID == rg.ChainID && a.ChainSeq > c.seq+1 && a.ChainSeq <= rg.LastSeq {
			// Skip the gap and resume from this row's stored hash, so that
			// what follows is still checked: one missing line, one finding.
			c.seq = a.ChainSeq
			c.rows++
			if b, err := hex.DecodeString(a.Hash); err == nil && len(b) == 32 {
				copy(c.prev[:], b)
			}
		}
		return ChainGap, "out of place: expected " + want
	}
	c.seq = a.ChainSeq
	c.rows++
	r, err := a.Row()
	if err != nil {
		return RowModified, err.Error()
	}
	var stored [32]byte
	storedOK := len(a.Hash) == 64
	if storedOK {
		_, err := hex.Decode(stored[:], []byte(a.Hash))
		storedOK = err == nil
	}
	commitment := r.PIICommitment
	problem := ""
	if r.PIISalt != nil {
		cm := c.enc.PIICommitment(&r, r.PIISalt)
		if !bytes.Equal(cm[:], r.PIICommitment) {
			problem = "pii values or pii_commitment differ from the commitment"
			commitment = cm[:]
		}
	}
	h := ChainHash(c.prev, c.enc.RowHash(&r, commitment))
	if problem == "" && (!storedOK || h != stored) {
		problem = "stored hash differs from the recomputed one"
	}
	if storedOK {
		c.prev = stored
	} else {
		c.prev = h
	}
	if as := c.anchored[a.ChainID][a.ChainSeq]; len(as) > 0 {
		got := hex.EncodeToString(h[:])
		for _, an := range as {
			c.anchorsChecked++
			if an.Hash != got {
				c.anchorFindings = append(c.anchorFindings, Finding{ChainID: a.ChainID, ChainSeq: a.ChainSeq, RowID: a.ID, Kind: AnchorMismatch, Bundle: an.Bundle,
					Detail: fmt.Sprintf("the archived chain hash at seq %d differs from the one anchor bundle %d signed", a.ChainSeq, an.Bundle)})
			}
		}
	}
	if problem == "" && (a.HashAlgorithm != "SHA-256" || a.HashVersion != HashVersion) {
		problem = "hash_algorithm or hash_version is not SHA-256 version 1"
	}
	if problem != "" {
		return RowModified, problem
	}
	return "", ""
}

// endRange closes the current range, noting in c.ended what is wrong with
// its end, and starts the next one.
func (c *archiveChain) endRange() {
	rg := c.ranges[c.idx]
	problem := ""
	if got := hex.EncodeToString(c.prev[:]); got != rg.EndHash {
		problem = fmt.Sprintf("chain %d seq %d..%d: the chain ends at a hash other than the header's end_hash", rg.ChainID, rg.FirstSeq, rg.LastSeq)
	} else if c.rows != rg.RowCount {
		problem = fmt.Sprintf("chain %d seq %d..%d: %d rows, the header says %d", rg.ChainID, rg.FirstSeq, rg.LastSeq, c.rows, rg.RowCount)
	}
	if problem != "" {
		c.note(rg, problem)
	}
	c.startNext()
}

func (c *archiveChain) note(rg ArchiveRange, problem string) {
	c.ended = append(c.ended, Finding{ChainID: rg.ChainID, ChainSeq: rg.LastSeq, Kind: RowModified, Detail: problem})
}

func (c *archiveChain) startNext() {
	if err := c.start(c.ranges, c.idx+1); err != nil {
		c.ended = append(c.ended, Finding{Kind: RowModified, Detail: err.Error()})
	}
}

// problems returns and forgets what endRange noted.
func (c *archiveChain) problems() []Finding {
	p := c.ended
	c.ended = nil
	return p
}

func details(fs []Finding) string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Detail
	}
	return strings.Join(out, "; ")
}

// finish checks that the rows reached the end of every range and returns
// every problem not yet returned.
func (c *archiveChain) finish() []Finding {
	for c.idx < len(c.ranges) {
		rg := c.ranges[c.idx]
		if c.seq != rg.LastSeq {
			c.note(rg, fmt.Sprintf("chain %d seq %d..%d: rows end at seq %d", rg.ChainID, rg.FirstSeq, rg.LastSeq, c.seq))
			c.startNext()
			continue
		}
		c.endRange()
	}
	return c.problems()
}

// ArchiveReport is the outcome of checking one archive file.
type ArchiveReport struct {
	Status string        `json:"status"` // intact or tampered
	SHA256 string        `json:"sha256"`
	Header ArchiveHeader `json:"header"`
	Rows   int64         `json:"rows"`
	// Redacted counts rows whose pii_salt was erased: their commitment is
	// taken as stored, as the verifier does for sealed redactions.
	Redacted int64 `json:"redacted_rows"`
	// ManifestsChecked is set when the file was compared with the database's
	// archive manifests; MACsChecked when their seals were checked too.
	// AnchorsChecked counts anchored positions compared with the file's
	// rows (VerifyArchiveAnchored).
	AnchorsChecked   int       `json:"anchors_checked,omitempty"`
	ManifestsChecked bool      `json:"manifests_checked"`
	MACsChecked      bool      `json:"macs_checked"`
	Findings         []Finding `json:"findings"`
}

// Intact reports whether the check found nothing.
func (r *ArchiveReport) Intact() bool { return len(r.Findings) == 0 }

// VerifyArchive checks an archive file from its bytes alone: the header,
// every row's commitment, row hash and chain link, the contiguity of each
// range and its end hash; it also computes the file's SHA-256. Findings name
// the line and the chain position, never row contents. progress, if not
// nil, is called with the compressed bytes read so far every 4096 rows.
// An error means the file could not be read as an archive at all.
func VerifyArchive(r io.Reader, progress func(bytesRead int64)) (*ArchiveReport, error) {
	return VerifyArchiveAnchored(r, progress, nil)
}

// VerifyArchiveAnchored is VerifyArchive that also compares the recomputed
// chain hash at every anchored position (AnchorReport.Heads) the archive
// holds with the anchor's: a difference is anchor_mismatch.
func VerifyArchiveAnchored(r io.Reader, progress func(bytesRead int64), anchored map[int16][]AnchoredHead) (*ArchiveReport, error) {
	rep := &ArchiveReport{Status: "intact", Findings: []Finding{}}
	counter := &countingReader{r: r}
	digest := sha256.New()
	tee := io.TeeReader(counter, digest)
	gz, err := gzip.NewReader(tee)
	if err != nil {
		return nil, fmt.Errorf("archive: not gzip: %w", err)
	}
	br := bufio.NewReaderSize(gz, 1<<16)
	line, err := br.ReadBytes('\n')
	if err != nil && (err != io.EOF || len(line) == 0) {
		return nil, fmt.Errorf("archive: header: %w", err)
	}
	dec := func(b []byte, v any) error {
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		return d.Decode(v)
	}
	if err := dec(line, &rep.Header); err != nil {
		return nil, fmt.Errorf("archive: line 1: not an archive header: %w", err)
	}
	if rep.Header.Format != ArchiveFormat || rep.Header.Version != ArchiveVersion || rep.Header.HashVersion != HashVersion {
		return nil, fmt.Errorf("archive: line 1: format %q version %d hash version %d, want %q %d %d",
			rep.Header.Format, rep.Header.Version, rep.Header.HashVersion, ArchiveFormat, ArchiveVersion, HashVersion)
	}
	var c archiveChain
	if len(anchored) > 0 {
		c.anchored = map[int16]map[int64][]AnchoredHead{}
		for chain, hs := range anchored {
			m := map[int64][]AnchoredHead{}
			for _, h := range hs {
				m[h.Seq] = append(m[h.Seq], h)
			}
			c.anchored[chain] = m
		}
	}
	if err := c.start(rep.Header.Ranges, 0); err != nil {
		return nil, err
	}
	add := func(chainID int16, seq, rowID int64, kind Kind, detail string) {
		rep.Findings = append(rep.Findings, Finding{ChainID: chainID, ChainSeq: seq, RowID: rowID, Kind: kind, Detail: detail})
	}
	for n := 2; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var a ArchiveRow
			if derr := json.Unmarshal(line, &a); derr != nil {
				add(0, 0, 0, RowModified, fmt.Sprintf("line %d: not an archive row", n))
			} else {
				rep.Rows++
				if a.PIISalt == nil {
					rep.Redacted++
				}
				kind, p := c.next(&a)
				rep.Findings = append(rep.Findings, c.problems()...)
				if p != "" {
					add(a.ChainID, a.ChainSeq, a.ID, kind, fmt.Sprintf("line %d: chain %d seq %d: %s", n, a.ChainID, a.ChainSeq, p))
				}
			}
			if progress != nil && n%4096 == 0 {
				progress(counter.n)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("archive: line %d: %w", n, err)
		}
	}
	rep.Findings = append(rep.Findings, c.finish()...)
	rep.Findings = append(rep.Findings, c.anchorFindings...)
	rep.AnchorsChecked = c.anchorsChecked
	// the digest covers the whole file, trailing bytes included
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if progress != nil {
		progress(counter.n)
	}
	rep.SHA256 = hex.EncodeToString(digest.Sum(nil))
	if !rep.Intact() {
		rep.Status = "tampered"
	}
	return rep, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ArchiveManifest is one row of audit.archive_manifests.
type ArchiveManifest struct {
	ID            int64     `json:"id"`
	ChainID       int16     `json:"chain_id"`
	FirstSeq      int64     `json:"first_seq"`
	LastSeq       int64     `json:"last_seq"`
	EndHash       string    `json:"end_hash"`
	RowCount      int64     `json:"row_count"`
	ArchiveURI    string    `json:"archive_uri"`
	ArchiveSHA256 string    `json:"archive_sha256"`
	CreatedAt     time.Time `json:"created_at"`
	KeyID         string    `json:"key_id"`
	MAC           string    `json:"mac"`
}

// Seal sets KeyID and MAC for the manifest's fields.
func (m *ArchiveManifest) Seal(keyID string, key []byte) {
	m.KeyID = keyID
	m.MAC = ManifestMAC(key, m.ChainID, m.FirstSeq, m.LastSeq, m.EndHash, m.RowCount, m.ArchiveSHA256)
}

// SealVerifies reports whether the manifest's MAC verifies under keys.
func (m *ArchiveManifest) SealVerifies(keys Keyring) bool {
	key, ok := keys[m.KeyID]
	return ok && hmac.Equal([]byte(ManifestMAC(key, m.ChainID, m.FirstSeq, m.LastSeq, m.EndHash, m.RowCount, m.ArchiveSHA256)), []byte(m.MAC))
}

// CompareManifests returns what disagrees between an archive (its digest
// and header) and the manifests recorded for it: a header range without
// its manifest, or recorded otherwise, and a manifest whose range the
// header does not hold. With keys, manifests whose seal does not verify
// are findings too.
func CompareManifests(digest string, hdr ArchiveHeader, mans []ArchiveManifest, keys Keyring) []Finding {
	var out []Finding
	for _, m := range mans {
		if !slices.ContainsFunc(hdr.Ranges, func(rg ArchiveRange) bool { return rg.ChainID == m.ChainID && rg.FirstSeq == m.FirstSeq }) {
			out = append(out, Finding{ChainID: m.ChainID, ChainSeq: m.FirstSeq, Kind: ChainGap,
				Detail: fmt.Sprintf("chain %d seq %d..%d: archive manifest %d records this range, which the archive does not hold", m.ChainID, m.FirstSeq, m.LastSeq, m.ID)})
		}
	}
	for _, rg := range hdr.Ranges {
		var m *ArchiveManifest
		for i := range mans {
			if mans[i].ChainID == rg.ChainID && mans[i].FirstSeq == rg.FirstSeq {
				m = &mans[i]
			}
		}
		pos := fmt.Sprintf("chain %d seq %d..%d", rg.ChainID, rg.FirstSeq, rg.LastSeq)
		switch {
		case m == nil:
			out = append(out, Finding{ChainID: rg.ChainID, ChainSeq: rg.FirstSeq, Kind: ChainGap,
				Detail: pos + ": no archive manifest records this range (an archive of a run that never sealed it?)"})
		case m.LastSeq != rg.LastSeq || m.EndHash != rg.EndHash || m.RowCount != rg.RowCount:
			out = append(out, Finding{ChainID: rg.ChainID, ChainSeq: rg.FirstSeq, Kind: CheckpointMismatch,
				Detail: fmt.Sprintf("%s: archive manifest %d records seq %d..%d, %d rows and another end hash", pos, m.ID, m.FirstSeq, m.LastSeq, m.RowCount)})
		case m.ArchiveSHA256 != digest:
			out = append(out, Finding{ChainID: rg.ChainID, ChainSeq: rg.FirstSeq, Kind: RowModified,
				Detail: fmt.Sprintf("%s: the file's SHA-256 differs from the one archive manifest %d recorded", pos, m.ID)})
		case len(keys) > 0 && !m.SealVerifies(keys):
			out = append(out, Finding{ChainID: rg.ChainID, ChainSeq: rg.FirstSeq, Kind: CheckpointForged,
				Detail: fmt.Sprintf("%s: archive manifest %d seal does not verify under key %s", pos, m.ID, m.KeyID)})
		}
	}
	return out
}
