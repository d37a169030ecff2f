package verifier

import (
	"github.com/auditdb/auditdb/integrity"

	"encoding/hex"
	"time"
)

// ArchiveRowColumns selects from audit.audit_log every column in the forms
// integrity.ArchiveRow keeps; scan a result row into ArchiveRowScanner.Targets.
const ArchiveRowColumns = `id, chain_id, chain_seq, "timestamp", recorded_at, action, status, principal_type,
	organization_id, target_resource_type, event_version, correlation_id, data_classification,
	retention_policy, processing_latency, ttl, principal_id, target_resource_id, abbrev(source_ip),
	outcome_description, details::text, pii_salt, pii_commitment, hash, hash_algorithm, hash_version, archived_at`

// ArchiveRowScanner reads rows of ArchiveRowColumns into an integrity.ArchiveRow,
// reused from row to row.
type ArchiveRowScanner struct {
	a                integrity.ArchiveRow
	ts, rec          time.Time
	salt, commitment []byte
	archivedAt       *time.Time
}

// Targets are the scan destinations, in ArchiveRowColumns' order.
func (s *ArchiveRowScanner) Targets() []any {
	a := &s.a
	return []any{&a.ID, &a.ChainID, &a.ChainSeq, &s.ts, &s.rec, &a.Action, &a.Status,
		&a.PrincipalType, &a.OrganizationID, &a.TargetResourceType, &a.EventVersion, &a.CorrelationID,
		&a.DataClassification, &a.RetentionPolicy, &a.ProcessingLatency, &a.TTL, &a.PrincipalID,
		&a.TargetResourceID, &a.SourceIP, &a.OutcomeDescription, &a.Details, &s.salt, &s.commitment, &a.Hash,
		&a.HashAlgorithm, &a.HashVersion, &s.archivedAt}
}

// Row completes and returns the row just scanned; it is overwritten by the
// next scan.
func (s *ArchiveRowScanner) Row() *integrity.ArchiveRow {
	a := &s.a
	a.TimestampUS, a.Timestamp = s.ts.UnixMicro(), integrity.FormatArchiveTime(s.ts)
	a.RecordedAtUS, a.RecordedAt = s.rec.UnixMicro(), integrity.FormatArchiveTime(s.rec)
	a.PIISalt = nil
	if s.salt != nil {
		h := hex.EncodeToString(s.salt)
		a.PIISalt = &h
	}
	a.PIICommitment = hex.EncodeToString(s.commitment)
	a.ArchivedAt = nil
	if s.archivedAt != nil {
		t := integrity.FormatArchiveTime(*s.archivedAt)
		a.ArchivedAt = &t
	}
	return a
}
