package integrity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// HashVersion is the integrity specification version this package implements.
const HashVersion = 1

// Row holds the columns of one audit_log row that take part in hashing, in
// the forms INTEGRITY.md fixes: timestamps as microseconds since the Unix
// epoch, source_ip in PostgreSQL's output form, details as PostgreSQL's text
// form of the jsonb value. Text is UTF-8 bytes; a nil slice is SQL NULL (an
// empty string is a non-nil empty slice). The verifier fills a Row straight
// from the wire without copying, so a Row is only valid until the next one.
type Row struct {
	ID                 int64
	ChainID            int16
	ChainSeq           int64
	TimestampUS        int64
	RecordedAtUS       int64
	Action             []byte
	Status             []byte
	PrincipalType      []byte
	OrganizationID     []byte
	TargetResourceType []byte
	EventVersion       []byte
	CorrelationID      []byte
	DataClassification []byte
	RetentionPolicy    []byte
	ProcessingLatency  int32
	HasLatency         bool // false: processing_latency is NULL
	TTL                []byte

	PrincipalID        []byte
	TargetResourceID   []byte
	SourceIP           []byte
	OutcomeDescription []byte
	Details            []byte // jsonb text form, embedded as is

	PIISalt       []byte // nil once erased
	PIICommitment []byte
}

// Encoder builds J(...) encodings into a reusable buffer. The zero value is
// ready; it is not safe for concurrent use.
type Encoder struct {
	buf []byte
	n   int
}

// begin starts an encoding with its tag, given already in JSON: the tags are
// constants with nothing to escape, so rows do not pay for escaping them.
func (e *Encoder) begin(jsonTag string) {
	e.buf = append(append(e.buf[:0], '['), jsonTag...)
	e.n = 1
}

func (e *Encoder) sep() {
	if e.n > 0 {
		e.buf = append(e.buf, ',', ' ')
	}
	e.n++
}

// str writes a text value, or null for nil.
func (e *Encoder) str(s []byte) {
	if s == nil {
		e.null()
		return
	}
	e.sep()
	e.buf = appendJSONString(e.buf, s)
}

// raw writes JSON text as it is, or null for nil.
func (e *Encoder) raw(s []byte) {
	if s == nil {
		e.null()
		return
	}
	e.sep()
	e.buf = append(e.buf, s...)
}

func (e *Encoder) int(v int64) {
	e.sep()
	e.buf = strconv.AppendInt(e.buf, v, 10)
}

func (e *Encoder) null() {
	e.sep()
	e.buf = append(e.buf, "null"...)
}

func (e *Encoder) end() []byte {
	e.buf = append(e.buf, ']')
	return e.buf
}

// PIIEncoding returns J('auditdb/pii/v1', principal_id, target_resource_id,
// source_ip, outcome_description, details). The slice is reused by the next
// call.
func (e *Encoder) PIIEncoding(r *Row) []byte {
	e.begin(`"auditdb/pii/v1"`)
	e.str(r.PrincipalID)
	e.str(r.TargetResourceID)
	e.str(r.SourceIP)
	e.str(r.OutcomeDescription)
	e.raw(r.Details)
	return e.end()
}

// RowEncoding returns J('auditdb/row/v1', id, chain_id, ... ttl). The slice
// is reused by the next call.
func (e *Encoder) RowEncoding(r *Row) []byte {
	e.begin(`"auditdb/row/v1"`)
	e.int(r.ID)
	e.int(int64(r.ChainID))
	e.int(r.ChainSeq)
	e.int(r.TimestampUS)
	e.int(r.RecordedAtUS)
	e.str(r.Action)
	e.str(r.Status)
	e.str(r.PrincipalType)
	e.str(r.OrganizationID)
	e.str(r.TargetResourceType)
	e.str(r.EventVersion)
	e.str(r.CorrelationID)
	e.str(r.DataClassification)
	e.str(r.RetentionPolicy)
	if r.HasLatency {
		e.int(int64(r.ProcessingLatency))
	} else {
		e.null()
	}
	e.str(r.TTL)
	return e.end()
}

// PIICommitment computes SHA-256(salt || J(pii...)).
func (e *Encoder) PIICommitment(r *Row, salt []byte) [32]byte {
	h := sha256.New()
	h.Write(salt)
	h.Write(e.PIIEncoding(r))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// RowHash computes SHA-256(J(core...) || commitment).
func (e *Encoder) RowHash(r *Row, commitment []byte) [32]byte {
	e.buf = append(e.RowEncoding(r), commitment...)
	return sha256.Sum256(e.buf)
}

// Genesis returns genesis(c) = SHA-256('auditdb/genesis/v1/' || c).
func Genesis(chainID int16) [32]byte {
	return sha256.Sum256([]byte("auditdb/genesis/v1/" + strconv.Itoa(int(chainID))))
}

// ChainHash returns hash(c, n) = SHA-256(hash(c, n-1) || row_hash(c, n)).
func ChainHash(prev, rowHash [32]byte) [32]byte {
	var b [64]byte
	copy(b[:32], prev[:])
	copy(b[32:], rowHash[:])
	return sha256.Sum256(b[:])
}

// CheckpointMAC returns hex HMAC-SHA-256(key, 'auditdb/checkpoint/v1\n' ||
// chain_id || '\n' || chain_seq || '\n' || hash || '\n' || sealed_at_us).
func CheckpointMAC(key []byte, chainID int16, seq int64, hashHex string, sealedAtUS int64) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("auditdb/checkpoint/v1\n" + strconv.Itoa(int(chainID)) + "\n" +
		strconv.FormatInt(seq, 10) + "\n" + hashHex + "\n" + strconv.FormatInt(sealedAtUS, 10)))
	return hex.EncodeToString(m.Sum(nil))
}

// ManifestMAC returns hex HMAC-SHA-256(key, 'auditdb/manifest/v1\n' ||
// chain_id || '\n' || first_seq || '\n' || last_seq || '\n' || end_hash ||
// '\n' || row_count || '\n' || archive_sha256). The archive's location is
// left out on purpose: an archive may move between stores.
func ManifestMAC(key []byte, chainID int16, firstSeq, lastSeq int64, endHashHex string, rowCount int64, archiveSHA256Hex string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("auditdb/manifest/v1\n" + strconv.Itoa(int(chainID)) + "\n" +
		strconv.FormatInt(firstSeq, 10) + "\n" + strconv.FormatInt(lastSeq, 10) + "\n" + endHashHex + "\n" +
		strconv.FormatInt(rowCount, 10) + "\n" + archiveSHA256Hex))
	return hex.EncodeToString(m.Sum(nil))
}

// RedactionMAC returns hex HMAC-SHA-256(key, 'auditdb/redaction/v1\n' ||
// row_id || '\n' || chain_id || '\n' || chain_seq || '\n' || created_at_us
// || '\n' || pii_after || '\n' || reason), where pii_after is
// RemainingPII of the row as the erasure left it: once the salt is gone the
// commitment no longer binds the PII columns, so the seal does. The reason
// is last, so any text in it is unambiguous.
func RedactionMAC(key []byte, rowID int64, chainID int16, seq int64, createdAtUS int64, piiAfterHex, reason string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("auditdb/redaction/v1\n" + strconv.FormatInt(rowID, 10) + "\n" + strconv.Itoa(int(chainID)) + "\n" +
		strconv.FormatInt(seq, 10) + "\n" + strconv.FormatInt(createdAtUS, 10) + "\n" + piiAfterHex + "\n" + reason))
	return hex.EncodeToString(m.Sum(nil))
}

// RemainingPII returns hex SHA-256(J('auditdb/pii/v1', principal_id,
// target_resource_id, source_ip, outcome_description, details)) of r: the
// pii commitment's encoding without a salt, over what an erasure left in
// the row. SQL: audit.remaining_pii(...).
func (e *Encoder) RemainingPII(r *Row) string {
	h := sha256.Sum256(e.PIIEncoding(r))
	return hex.EncodeToString(h[:])
}

// appendJSONString appends s as a JSON string exactly as PostgreSQL's
// escape_json does: '"' and '\' escaped, \b \f \n \r \t, other bytes below
// 0x20 as \u00xx in lowercase hex, everything else copied as UTF-8.
func appendJSONString(b []byte, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
