package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"
)

// Status is the outcome of the audited action.
type Status string

// The statuses the database accepts.
const (
	StatusAttempt Status = "attempt"
	StatusSuccess Status = "success"
	StatusFailure Status = "failure"
)

func (s Status) valid() bool {
	return s == StatusAttempt || s == StatusSuccess || s == StatusFailure
}

// DataClassification says how sensitive the data the event concerns is.
type DataClassification string

// The classifications the database accepts (upper case, as stored).
const (
	ClassificationPublic       DataClassification = "PUBLIC"
	ClassificationInternal     DataClassification = "INTERNAL"
	ClassificationConfidential DataClassification = "CONFIDENTIAL"
	ClassificationPHI          DataClassification = "PHI"
)

func (d DataClassification) valid() bool {
	return d == ClassificationPublic || d == ClassificationInternal ||
		d == ClassificationConfidential || d == ClassificationPHI
}

// The column defaults of audit.audit_log, applied by the client to fields
// left empty, as the database does to columns left out.
const (
	DataClassificationDefault = ClassificationInternal
	RetentionPolicyDefault    = "standard"
	EventVersionDefault       = "1.0"
)

// Event is one audit event to write. Optional strings left empty are
// written as NULL (except the three with database defaults, see below).
// Fields that may hold personal data (PrincipalID, TargetResourceID,
// SourceIP, OutcomeDescription, Details) are hashed through the row's PII
// commitment, the others directly (INTEGRITY.md).
type Event struct {
	// Timestamp is when the action happened (the trigger adds recorded_at,
	// when it was written). Required; stored with microsecond precision
	// (finer digits are dropped) and read back in UTC.
	Timestamp time.Time
	// Action names what was done, e.g. "fhir.patient.read". Required, at
	// most 255 characters.
	Action string
	// Status is the outcome. Required.
	Status Status

	// PrincipalID identifies who acted. At most 255 characters.
	PrincipalID string
	// PrincipalType is the kind of principal, e.g. "practitioner". At most
	// 255 characters.
	PrincipalType string
	// OrganizationID is the tenant. At most 255 characters.
	OrganizationID string
	// TargetResourceType is the kind of resource acted on, e.g. "Patient".
	// At most 255 characters.
	TargetResourceType string
	// TargetResourceID identifies the resource acted on. At most 255
	// characters.
	TargetResourceID string
	// SourceIP is where the request came from; the zero Addr means NULL. An
	// IPv6 zone, which inet cannot hold, is dropped.
	SourceIP netip.Addr
	// OutcomeDescription says what happened in words. At most 10,000
	// characters.
	OutcomeDescription string
	// Details holds anything else, as a JSON object; nil means NULL. It must
	// encode with encoding/json, and the database's text form of it may be
	// at most 65,536 bytes. Read back, numbers are json.Number.
	Details map[string]any

	// DataClassification defaults to INTERNAL.
	DataClassification DataClassification
	// RetentionPolicy names a row of audit.retention_policies; at most 50
	// characters. Defaults to "standard".
	RetentionPolicy string
	// EventVersion is the version of the event's shape; at most 20
	// characters. Defaults to "1.0".
	EventVersion string
	// CorrelationID ties related events together. At most 255 characters.
	CorrelationID string
	// ProcessingLatency is how long the action took, in milliseconds; nil
	// means NULL. Must not be negative.
	ProcessingLatency *int32
	// TTL is a free-form retention hint. At most 255 characters.
	TTL string
}

// ValidationError is an event that the database would refuse. Its message
// is the database's own for the rules of the insert trigger
// ("audit_log.status: must be one of attempt, success, failure"); it names
// the column and the rule, never the value.
type ValidationError struct {
	// Field is the column, e.g. "action".
	Field string
	// Rule is what is wrong, e.g. "is required".
	Rule string
	// err is an underlying cause (a JSON encoding error), if any. It is not
	// part of the message, which must not show values.
	err error
}

func (e *ValidationError) Error() string { return "audit_log." + e.Field + ": " + e.Rule }

// Unwrap returns the underlying cause, if any.
func (e *ValidationError) Unwrap() error { return e.err }

func invalid(field, rule string) *ValidationError { return &ValidationError{Field: field, Rule: rule} }

// The accepted timestamps: the insert trigger's range, 1900-01-01 to
// 9999-12-31 UTC (four-digit years, so every row has a monthly partition).
// It lies well inside what PostgreSQL and pgx can carry.
var (
	minTimestamp = time.Date(1900, time.January, 1, 0, 0, 0, 0, time.UTC)
	maxTimestamp = time.Date(10000, time.January, 1, 0, 0, 0, 0, time.UTC).Add(-time.Microsecond)
)

func inRange(t time.Time) bool {
	return !t.Before(minTimestamp) && t.Before(maxTimestamp.Add(time.Microsecond))
}

// Validate reports the first rule e breaks, with the database's defaults
// applied, or nil. The rules and their order are those of the insert trigger
// (audit.reject_invalid_event), and so are the messages; lengths count
// characters, as PostgreSQL's length() does. A few rules come first that the
// database enforces before the trigger runs, when it decodes the values; the
// client words those itself: text that is not UTF-8 or holds NUL characters,
// details that cannot be encoded as JSON or hold NUL characters.
func (e Event) Validate() error {
	_, err := e.row()
	return err
}

// columns are the columns an Event fills, in the order of Event.row.
var columns = []string{
	"timestamp", "action", "status", "principal_id", "principal_type", "organization_id",
	"target_resource_type", "target_resource_id", "source_ip", "outcome_description", "details",
	"data_classification", "retention_policy", "event_version", "correlation_id",
	"processing_latency", "ttl",
}

// row validates e and returns the values of columns for it.
func (e Event) row() ([]any, error) {
	e = e.withDefaults()

	if !e.Timestamp.IsZero() && !inRange(e.Timestamp) {
		return nil, invalid("timestamp", "must be from 1900-01-01 to 9999-12-31 (UTC)")
	}
	// in the order of columns, which is the order the server decodes them
	for _, t := range []struct{ col, val string }{
		{"action", e.Action}, {"status", string(e.Status)}, {"principal_id", e.PrincipalID},
		{"principal_type", e.PrincipalType}, {"organization_id", e.OrganizationID},
		{"target_resource_type", e.TargetResourceType}, {"target_resource_id", e.TargetResourceID},
		{"outcome_description", e.OutcomeDescription},
	} {
		if err := checkText(t.col, t.val); err != nil {
			return nil, err
		}
	}
	details, size, err := encodeDetails(e.Details)
	if err != nil {
		return nil, err
	}
	for _, t := range []struct{ col, val string }{
		{"data_classification", string(e.DataClassification)}, {"retention_policy", e.RetentionPolicy},
		{"event_version", e.EventVersion}, {"correlation_id", e.CorrelationID}, {"ttl", e.TTL},
	} {
		if err := checkText(t.col, t.val); err != nil {
			return nil, err
		}
	}

	// The trigger's rules, in audit.reject_invalid_event's order.
	switch {
	case e.Timestamp.IsZero():
		return nil, invalid("timestamp", "is required")
	case e.Action == "":
		return nil, invalid("action", "is required")
	case e.Status == "":
		return nil, invalid("status", "is required")
	}
	// data_classification and retention_policy have defaults, so they are
	// never missing or empty here; a Go time is always finite.
	if !e.Status.valid() {
		return nil, invalid("status", "must be one of attempt, success, failure")
	}
	if !e.DataClassification.valid() {
		return nil, invalid("data_classification", "must be one of PUBLIC, INTERNAL, CONFIDENTIAL, PHI")
	}
	limits := []struct {
		col string
		val string
		max int
	}{
		{"action", e.Action, 255}, {"principal_id", e.PrincipalID, 255},
		{"principal_type", e.PrincipalType, 255}, {"organization_id", e.OrganizationID, 255},
		{"target_resource_type", e.TargetResourceType, 255},
		{"target_resource_id", e.TargetResourceID, 255},
		{"correlation_id", e.CorrelationID, 255}, {"ttl", e.TTL, 255},
		{"event_version", e.EventVersion, 20}, {"retention_policy", e.RetentionPolicy, 50},
		{"outcome_description", e.OutcomeDescription, 10000},
	}
	for _, l := range limits {
		// bytes bound characters from above: count only when it matters
		if len(l.val) > l.max && utf8.RuneCountInString(l.val) > l.max {
			return nil, invalid(l.col, fmt.Sprintf("longer than %d characters", l.max))
		}
	}
	// details is a map, hence always a JSON object.
	if size.tooLarge() {
		return nil, invalid("details", "larger than 65536 bytes as JSON text")
	}
	if e.ProcessingLatency != nil && *e.ProcessingLatency < 0 {
		return nil, invalid("processing_latency", "must not be negative")
	}

	var ip any
	if e.SourceIP.IsValid() {
		ip = e.SourceIP.WithZone("")
	}
	var latency any
	if e.ProcessingLatency != nil {
		latency = *e.ProcessingLatency
	}
	var det any
	if details != nil {
		det = details
	}
	return []any{
		e.Timestamp, e.Action, string(e.Status), nullable(e.PrincipalID), nullable(e.PrincipalType),
		nullable(e.OrganizationID), nullable(e.TargetResourceType), nullable(e.TargetResourceID), ip,
		nullable(e.OutcomeDescription), det, string(e.DataClassification), e.RetentionPolicy,
		e.EventVersion, nullable(e.CorrelationID), latency, nullable(e.TTL),
	}, nil
}

func (e Event) withDefaults() Event {
	if e.DataClassification == "" {
		e.DataClassification = DataClassificationDefault
	}
	if e.RetentionPolicy == "" {
		e.RetentionPolicy = RetentionPolicyDefault
	}
	if e.EventVersion == "" {
		e.EventVersion = EventVersionDefault
	}
	return e
}

// nullable maps the empty string to NULL.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// checkText applies what PostgreSQL's text input requires of a UTF-8
// database.
func checkText(col, s string) error {
	if !utf8.ValidString(s) {
		return invalid(col, "must be valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalid(col, "must not contain NUL characters")
	}
	return nil
}

// encodeDetails returns the JSON sent for details (nil for NULL) and its
// sizes as jsonb.
func encodeDetails(details map[string]any) (json.RawMessage, jsonbSize, error) {
	if details == nil {
		return nil, jsonbSize{}, nil
	}
	b, err := json.Marshal(details)
	if err != nil {
		return nil, jsonbSize{}, &ValidationError{Field: "details", Rule: "cannot be encoded as JSON", err: err}
	}
	// Small documents cannot reach the size limit (see smallDetails), hold
	// no NUL unless its escape appears, and only numbers with an exponent
	// can be out of numeric's range: most need no decoding.
	if len(b) <= smallDetails && !bytes.Contains(b, []byte(`\u0000`)) && !hasExponent(b) {
		return b, jsonbSize{}, nil
	}
	size, hasNUL, err := measureJSONB(b)
	if errors.Is(err, errNumberRange) {
		return nil, jsonbSize{}, invalid("details", "must not hold numbers out of PostgreSQL's numeric range")
	}
	if err != nil {
		return nil, jsonbSize{}, &ValidationError{Field: "details", Rule: "cannot be encoded as JSON", err: err}
	}
	if hasNUL {
		return nil, jsonbSize{}, invalid("details", "must not contain NUL characters")
	}
	return b, size, nil
}
