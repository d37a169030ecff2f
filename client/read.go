package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Limits of Query.Limit.
const (
	QueryLimitDefault = 100
	QueryLimitMax     = 1000
)

// StoredEvent is an event as stored, with what the database assigned.
// Its JSON form (GDPR exports) uses the columns' snake_case names, Event's
// fields inlined: see the README's "JSON and CSV shapes".
type StoredEvent struct {
	Event
	// ID is the row's id.
	ID int64 `json:"id"`
	// ChainID and ChainSeq place the row in its hash chain.
	ChainID  int16 `json:"chain_id"`
	ChainSeq int64 `json:"chain_seq"`
	// RecordedAt is when the row was written (the server's clock).
	RecordedAt time.Time `json:"recorded_at"`
	// Hash is the row's chain hash, hex SHA-256.
	Hash string `json:"hash"`
}

// Cursor is a position in Search's order (newest first): the timestamp and
// id of the last event of a page.
type Cursor struct {
	Timestamp time.Time
	ID        int64
}

// String encodes c as "<unix microseconds>_<id>", for passing through URLs;
// ParseCursor decodes it.
func (c Cursor) String() string {
	return strconv.FormatInt(c.Timestamp.UnixMicro(), 10) + "_" + strconv.FormatInt(c.ID, 10)
}

// ParseCursor decodes the output of Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	ts, id, ok := strings.Cut(s, "_")
	micros, err1 := strconv.ParseInt(ts, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return Cursor{}, errors.New("client: cursor: malformed")
	}
	return Cursor{Timestamp: time.UnixMicro(micros).UTC(), ID: n}, nil
}

// Query selects events for Search and Count. Every field left zero selects
// everything; the fields set combine with AND.
type Query struct {
	OrganizationID     string
	PrincipalID        string
	TargetResourceType string
	TargetResourceID   string
	// Action matches the action exactly.
	Action string
	// ActionPrefix matches actions that start with it, taken literally (%
	// and _ are not wildcards).
	ActionPrefix       string
	Status             Status
	DataClassification DataClassification
	// From and To select timestamps in [From, To); either may be zero
	// (unbounded).
	From, To time.Time
	// Limit is the most events a page holds, at most 1000; it does not
	// restrict Count. Defaults to 100.
	Limit int
	// After continues a search from the Next of a previous page (with the
	// same filters); it does not restrict Count.
	After *Cursor
}

// Page is one page of Search results, newest first.
type Page struct {
	Events []StoredEvent
	// Next continues the search; nil on the last page.
	Next *Cursor
}

// Search returns the events q selects, newest first (by timestamp, then
// id), one page at a time: pass the page's Next as q.After for the next.
// Pages stay consistent while events are written, since they are found by
// position rather than by offset. With a replica (Config.ReplicaURL) it
// reads there while the replica is within Config.ReplicaMaxLag.
func (c *Client) Search(ctx context.Context, q Query) (Page, error) {
	return routed(ctx, c, func(db querier) (Page, error) { return search(ctx, db, q) })
}

// Count returns how many events q selects. Limit and After are checked as
// Search checks them but do not restrict the count. It reads where Search
// does.
func (c *Client) Count(ctx context.Context, q Query) (int64, error) {
	return routed(ctx, c, func(db querier) (int64, error) { return count(ctx, db, q) })
}

// Get returns the event with this id, or an error wrapping ErrNotFound. It
// reads where Search does: an event just written may not be on the
// replica yet.
func (c *Client) Get(ctx context.Context, id int64) (StoredEvent, error) {
	return routed(ctx, c, func(db querier) (StoredEvent, error) { return get(ctx, db, id) })
}

const selectColumns = `id, chain_id, chain_seq, "timestamp", recorded_at, action, status, principal_id,
	principal_type, organization_id, target_resource_type, target_resource_id, source_ip,
	outcome_description, details, data_classification, retention_policy, event_version,
	correlation_id, processing_latency, ttl, hash`

func search(ctx context.Context, db querier, q Query) (Page, error) {
	q, err := q.validate()
	if err != nil {
		return Page{}, err
	}
	var b whereBuilder
	q.filters(&b)
	if q.After != nil {
		ts, id := b.arg(q.After.Timestamp), b.arg(q.After.ID)
		// the first condition lets the planner use the timestamp index
		b.add(`"timestamp" <= ` + ts + ` AND ("timestamp", id) < (` + ts + `, ` + id + `)`)
	}
	limit := b.arg(q.Limit + 1) // one more tells whether a next page exists
	sql := `SELECT ` + selectColumns + ` FROM audit.audit_log` + b.clause() +
		` ORDER BY "timestamp" DESC, id DESC LIMIT ` + limit
	rows, err := db.Query(ctx, sql, b.args...)
	if err != nil {
		return Page{}, fmt.Errorf("client: search: %w", err)
	}
	defer rows.Close()
	events := make([]StoredEvent, 0, min(q.Limit+1, 64))
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return Page{}, fmt.Errorf("client: search: %w", err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("client: search: %w", err)
	}
	page := Page{Events: events}
	if len(events) > q.Limit {
		page.Events = events[:q.Limit]
		last := page.Events[q.Limit-1]
		page.Next = &Cursor{Timestamp: last.Timestamp, ID: last.ID}
	}
	return page, nil
}

func count(ctx context.Context, db querier, q Query) (int64, error) {
	q, err := q.validate()
	if err != nil {
		return 0, err
	}
	var b whereBuilder
	q.filters(&b)
	var n int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log`+b.clause(), b.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("client: count: %w", err)
	}
	return n, nil
}

func get(ctx context.Context, db querier, id int64) (StoredEvent, error) {
	rows, err := db.Query(ctx, `SELECT `+selectColumns+` FROM audit.audit_log WHERE id = $1 LIMIT 1`, id)
	if err != nil {
		return StoredEvent{}, fmt.Errorf("client: get event %d: %w", id, err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanEvent)
	if errors.Is(err, pgx.ErrNoRows) {
		return StoredEvent{}, fmt.Errorf("%w (id %d)", ErrNotFound, id)
	}
	if err != nil {
		return StoredEvent{}, fmt.Errorf("client: get event %d: %w", id, err)
	}
	return e, nil
}

// validate checks q and applies the default limit.
func (q Query) validate() (Query, error) {
	for _, f := range []struct{ name, val string }{
		{"OrganizationID", q.OrganizationID}, {"PrincipalID", q.PrincipalID},
		{"TargetResourceType", q.TargetResourceType}, {"TargetResourceID", q.TargetResourceID},
		{"Action", q.Action}, {"ActionPrefix", q.ActionPrefix},
	} {
		if err := checkText(f.name, f.val); err != nil {
			return q, fmt.Errorf("client: Query.%s: %s", f.name, err.(*ValidationError).Rule)
		}
	}
	if q.Status != "" && !q.Status.valid() {
		return q, errors.New("client: Query.Status: must be one of attempt, success, failure")
	}
	if q.DataClassification != "" && !q.DataClassification.valid() {
		return q, errors.New("client: Query.DataClassification: must be one of PUBLIC, INTERNAL, CONFIDENTIAL, PHI")
	}
	switch {
	case q.Limit < 0:
		return q, fmt.Errorf("client: Query.Limit: must not be negative (%d)", q.Limit)
	case q.Limit == 0:
		q.Limit = QueryLimitDefault
	case q.Limit > QueryLimitMax:
		return q, fmt.Errorf("client: Query.Limit: must be at most %d (%d)", QueryLimitMax, q.Limit)
	}
	for _, t := range []struct {
		name string
		val  time.Time
	}{{"From", q.From}, {"To", q.To}} {
		if !t.val.IsZero() && !inRange(t.val) {
			return q, fmt.Errorf("client: Query.%s: out of range", t.name)
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return q, errors.New("client: Query.To: must be after Query.From")
	}
	if q.After != nil {
		if q.After.Timestamp.IsZero() {
			return q, errors.New("client: Query.After: Timestamp is required")
		}
		if !inRange(q.After.Timestamp) {
			return q, errors.New("client: Query.After: Timestamp out of range")
		}
	}
	return q, nil
}

// filters adds q's conditions, every value a parameter.
func (q Query) filters(b *whereBuilder) {
	for _, f := range []struct{ col, val string }{
		{"organization_id", q.OrganizationID}, {"principal_id", q.PrincipalID},
		{"target_resource_type", q.TargetResourceType}, {"target_resource_id", q.TargetResourceID},
		{"action", q.Action}, {"status", string(q.Status)},
		{"data_classification", string(q.DataClassification)},
	} {
		if f.val != "" {
			b.add(f.col + ` = ` + b.arg(f.val))
		}
	}
	if q.ActionPrefix != "" {
		b.add(`action LIKE ` + b.arg(likePrefix(q.ActionPrefix)) + ` ESCAPE '!'`)
	}
	if !q.From.IsZero() {
		b.add(`"timestamp" >= ` + b.arg(q.From))
	}
	if !q.To.IsZero() {
		b.add(`"timestamp" < ` + b.arg(q.To))
	}
}

// likePrefix makes a LIKE pattern matching strings that start with p. The
// escape character is '!' rather than a backslash, whose meaning in a
// string literal depends on standard_conforming_strings.
func likePrefix(p string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(p) + "%"
}

// whereBuilder collects conditions and their parameters.
type whereBuilder struct {
	conds []string
	args  []any
}

// arg adds a parameter and returns its placeholder.
func (b *whereBuilder) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

func (b *whereBuilder) add(cond string) { b.conds = append(b.conds, cond) }

func (b *whereBuilder) clause() string {
	if len(b.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(b.conds, " AND ")
}

func scanEvent(row pgx.CollectableRow) (StoredEvent, error) {
	var (
		e                                               StoredEvent
		status, class, retention                        string
		principalID, principalType, org, resType, resID *string
		outcome, version, correlation, ttl              *string
		ip                                              *netip.Prefix
		details                                         []byte
	)
	err := row.Scan(&e.ID, &e.ChainID, &e.ChainSeq, &e.Timestamp, &e.RecordedAt, &e.Action, &status,
		&principalID, &principalType, &org, &resType, &resID, &ip, &outcome, &details, &class,
		&retention, &version, &correlation, &e.ProcessingLatency, &ttl, &e.Hash)
	if err != nil {
		return StoredEvent{}, err
	}
	e.Timestamp = e.Timestamp.UTC()
	e.RecordedAt = e.RecordedAt.UTC()
	e.Status = Status(status)
	e.DataClassification = DataClassification(class)
	e.RetentionPolicy = retention
	e.PrincipalID, e.PrincipalType, e.OrganizationID = deref(principalID), deref(principalType), deref(org)
	e.TargetResourceType, e.TargetResourceID = deref(resType), deref(resID)
	e.OutcomeDescription, e.EventVersion = deref(outcome), deref(version)
	e.CorrelationID, e.TTL = deref(correlation), deref(ttl)
	if ip != nil {
		e.SourceIP = ip.Addr()
	}
	if details != nil {
		dec := json.NewDecoder(bytes.NewReader(details))
		dec.UseNumber() // keeps integers beyond 2^53 exact
		if err := dec.Decode(&e.Details); err != nil {
			return StoredEvent{}, fmt.Errorf("decode details of event %d: %w", e.ID, err)
		}
	}
	return e, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
