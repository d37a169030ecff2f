package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditdb/auditdb/internal/report"
	"github.com/auditdb/auditdb/internal/subject"
)

// Report is a compliance report made by AccessReport, DisclosureReport,
// WorkforceActivityReport or IntegrityAttestation: a main table, a summary,
// further tables, notes and the integrity status of the log when it was
// made. Render writes it as a text table, JSON, CSV or a self-contained HTML
// page (see ReportFormat); the fields are there for programs that want the
// values.
type Report = report.Report

// ReportColumn, ReportField and ReportSection are the parts of a Report.
type (
	ReportColumn  = report.Column
	ReportField   = report.Field
	ReportSection = report.Section
)

// ReportFormat is an output format of Report.Render.
type ReportFormat = report.Format

// The formats of Report.Render. CSV holds the main table only; the others
// hold everything.
const (
	ReportTable = report.FormatTable
	ReportJSON  = report.FormatJSON
	ReportCSV   = report.FormatCSV
	ReportHTML  = report.FormatHTML
)

// Defaults and limits of the report requests.
const (
	// ReportMaxRowsDefault is the most rows a report holds unless its
	// request says otherwise; ReportMaxRowsLimit is the ceiling.
	ReportMaxRowsDefault = 10_000
	ReportMaxRowsLimit   = 1_000_000
	// ReportPeriodDefault is the period of access and activity reports
	// when From is zero: the 30 days before To.
	ReportPeriodDefault = 30 * 24 * time.Hour
	// DisclosureLookbackYears is the period of a disclosure accounting when
	// From is zero: HIPAA 164.528(a) gives individuals an accounting of the
	// six years before their request.
	DisclosureLookbackYears = 6
	// AttestationMaxAgeDefault is how old the newest verification may be
	// before an attestation calls it stale.
	AttestationMaxAgeDefault = 24 * time.Hour
	// AttestationFindingsMax is the most open findings an attestation
	// lists; it counts them all.
	AttestationFindingsMax = 1000
)

// DisclosureActionsDefault are the action patterns that count as
// disclosures unless DisclosureReportRequest.Actions says otherwise. A
// leading "*" matches any start, a trailing "*" any end; otherwise the
// action must match exactly.
var DisclosureActionsDefault = []string{"*.disclose", "*.disclosure", "*.export", "*.share", "*.release", "ehr.chart.print"}

// ErrReportTooLarge is returned (wrapped, in a *ReportTooLargeError) when a
// report would hold more rows than its MaxRows. Reports do not truncate
// silently: narrow the period or raise MaxRows (up to ReportMaxRowsLimit).
var ErrReportTooLarge = errors.New("client: report too large")

// ReportTooLargeError is the error of a report that would hold more rows
// than its MaxRows. Its message names the Go field (MaxRows); a command
// line names its own flag from MaxRows and Limit instead.
type ReportTooLargeError struct {
	// What names the report, e.g. "activity report".
	What string
	// MaxRows is the cap that was passed; Limit the highest cap allowed.
	MaxRows int
}

// Limit is ReportMaxRowsLimit, the highest MaxRows a request may give.
func (e *ReportTooLargeError) Limit() int { return ReportMaxRowsLimit }

func (e *ReportTooLargeError) Error() string {
	return fmt.Sprintf("%s: %s: more than %d rows in the period: narrow the period or raise MaxRows (at most %d)",
		ErrReportTooLarge, e.What, e.MaxRows, ReportMaxRowsLimit)
}

// Unwrap makes errors.Is(err, ErrReportTooLarge) hold.
func (e *ReportTooLargeError) Unwrap() error { return ErrReportTooLarge }

// reportBatch is how many rows one keyset query reads: each statement stays
// short, and a report never asks PostgreSQL for an unbounded result.
const reportBatch = 1000

// AccessReportRequest asks for every event on one resource (typically a
// patient's record) in a period: who acted, when, what they did, and the
// outcome.
type AccessReportRequest struct {
	// TargetResourceType is the resource's type. Defaults to "Patient".
	TargetResourceType string
	// TargetResourceID is the resource's id. Required.
	TargetResourceID string
	// From and To bound the period [From, To) on the event timestamp. To
	// defaults to now (the database's clock); From defaults to
	// ReportPeriodDefault before To.
	From, To time.Time
	// MaxRows is the most events the report holds; more is an error
	// wrapping ErrReportTooLarge. Defaults to ReportMaxRowsDefault.
	MaxRows int
}

// DisclosureReportRequest asks for an accounting of disclosures (HIPAA
// 164.528): disclosures of protected health information to parties
// outside the covered entity.
//
// An event counts as a disclosure when its data_classification is PHI, its
// status is success (an attempt that failed disclosed nothing), its target
// resource is of TargetResourceType (and TargetResourceID when set), and its
// action matches one of Actions. The recipient and purpose come from the
// event's details ("recipient", "purpose"); the report counts disclosures
// that lack them, since 164.528(b)(2) asks for both.
type DisclosureReportRequest struct {
	// TargetResourceType is the type of the resources whose disclosures are
	// accounted for. Defaults to "Patient".
	TargetResourceType string
	// TargetResourceID restricts the accounting to one individual. Defaults
	// to every resource of the type.
	TargetResourceID string
	// From and To bound the period [From, To). To defaults to now; From
	// defaults to DisclosureLookbackYears before To.
	From, To time.Time
	// Actions are the action patterns that are disclosures. Defaults to
	// DisclosureActionsDefault.
	Actions []string
	// MaxRows is the most disclosures the report holds. Defaults to
	// ReportMaxRowsDefault.
	MaxRows int
}

// ActivityReportRequest asks for what one workforce member (a principal)
// did in a period.
type ActivityReportRequest struct {
	// PrincipalID is the workforce member. Required.
	PrincipalID string
	// From and To bound the period [From, To). To defaults to now; From
	// defaults to ReportPeriodDefault before To.
	From, To time.Time
	// MaxRows is the most events the report holds. Defaults to
	// ReportMaxRowsDefault.
	MaxRows int
}

// AttestationRequest asks for an integrity attestation.
type AttestationRequest struct {
	// MaxAge is how old the newest verification may be before the
	// attestation calls it stale. Defaults to AttestationMaxAgeDefault.
	MaxAge time.Duration
	// Keys, seal key id to key, check the seals of the verification runs
	// the attestation rests on: a run whose record was changed (a status
	// flipped to intact) makes the verdict TAMPERED. Defaults to none:
	// records are only checked against their findings.
	Keys map[string][]byte
}

// period is a validated report period and row cap.
type period struct {
	from, to time.Time
	maxRows  int
}

// checkPeriod validates the period and row cap of a request named req;
// the defaults that depend on the clock are applied later, in the
// report's transaction.
func checkPeriod(req string, from, to time.Time, maxRows int) error {
	for _, t := range []struct {
		name string
		val  time.Time
	}{{"From", from}, {"To", to}} {
		if !t.val.IsZero() && !inRange(t.val) {
			return fmt.Errorf("client: %s.%s: out of range", req, t.name)
		}
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		return fmt.Errorf("client: %s.To: must be after %s.From", req, req)
	}
	if maxRows < 0 || maxRows > ReportMaxRowsLimit {
		return fmt.Errorf("client: %s.MaxRows: must be between 0 (default %d) and %d", req, ReportMaxRowsDefault, ReportMaxRowsLimit)
	}
	return nil
}

// resolve applies the clock-dependent defaults: To is now, From is To
// minus back (years or a duration).
func resolve(req string, now, from, to time.Time, maxRows int, back func(time.Time) time.Time) (period, error) {
	if to.IsZero() {
		to = now
	}
	if from.IsZero() {
		from = back(to)
	}
	if !to.After(from) {
		return period{}, fmt.Errorf("client: %s.From: must be before To (To defaults to now)", req)
	}
	if maxRows == 0 {
		maxRows = ReportMaxRowsDefault
	}
	return period{from: from.UTC(), to: to.UTC(), maxRows: maxRows}, nil
}

func checkRequired(req, field, val string) error {
	if val == "" {
		return fmt.Errorf("client: %s.%s: required", req, field)
	}
	if err := checkText(field, val); err != nil {
		return fmt.Errorf("client: %s.%s: %s", req, field, err.(*ValidationError).Rule)
	}
	return nil
}

// readOnly runs fn in a read-only REPEATABLE READ transaction, so every page
// of a report and its integrity footer come from one snapshot: events
// committed while the report pages through are in none of its parts.
func (c *Client) readOnly(ctx context.Context, what string, fn func(tx pgx.Tx, now time.Time) (*Report, error)) (*Report, error) {
	tx, err := c.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", what, err)
	}
	defer func() {
		// read-only, so there is nothing to undo; ending the transaction
		// returns the connection, even when ctx was cancelled
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		_ = tx.Rollback(rctx)
		cancel()
	}()
	var now time.Time
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return nil, fmt.Errorf("client: %s: %w", what, err)
	}
	now = now.UTC()
	rep, err := fn(tx, now)
	if err != nil {
		return nil, err
	}
	rep.GeneratedAt = now
	if rep.Integrity, err = integrityLine(ctx, tx); err != nil {
		return nil, fmt.Errorf("client: %s: %w", what, err)
	}
	if rep.Kind != "attestation" { // which lists the manifests itself
		var manifests int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM audit.archive_manifests`).Scan(&manifests); err != nil {
			return nil, fmt.Errorf("client: %s: %w", what, err)
		}
		if manifests > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("Retention has archived rows out of the audit log under %d archive manifests "+
				"(see the integrity attestation); events among them are not in this report: consult the archives for periods they cover.", manifests))
		}
	}
	return rep, nil
}

// pageEvents reads the events of audit.audit_log that where's conditions
// select, in (timestamp, id) order, reportBatch at a time by keyset, and
// returns scan's row for each.
// More than maxRows events is an error wrapping ErrReportTooLarge.
func pageEvents(ctx context.Context, tx pgx.Tx, what, cols string, where func(b *whereBuilder), maxRows int,
	scan func(pgx.Rows) (row []any, ts time.Time, id int64, err error)) ([][]any, error) {
	var (
		out   [][]any
		after *Cursor
	)
	for {
		var b whereBuilder
		where(&b)
		if after != nil {
			ts, id := b.arg(after.Timestamp), b.arg(after.ID)
			// the first condition lets the planner seek in its index
			b.add(`"timestamp" >= ` + ts + ` AND ("timestamp", id) > (` + ts + `, ` + id + `)`)
		}
		limit := min(reportBatch, maxRows+1-len(out)) // one more than maxRows tells the cap was passed
		// built here: the conditions and their parameter numbers vary by
		// report and page, so this statement cannot live in a .sql file
		sql := `SELECT id, "timestamp", ` + cols + ` FROM audit.audit_log l` + b.clause() +
			` ORDER BY "timestamp", id LIMIT ` + b.arg(limit)
		rows, err := tx.Query(ctx, sql, b.args...)
		if err != nil {
			return nil, fmt.Errorf("client: %s: %w", what, err)
		}
		inPage := 0
		for rows.Next() {
			row, ts, id, err := scan(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("client: %s: %w", what, err)
			}
			out = append(out, row)
			after = &Cursor{Timestamp: ts, ID: id}
			inPage++
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("client: %s: %w", what, err)
		}
		if len(out) > maxRows {
			return nil, &ReportTooLargeError{What: what, MaxRows: maxRows}
		}
		if inPage < limit {
			return out, nil
		}
	}
}

// eventReport is what the access, disclosure and activity reports share:
// a period (validated, then its defaults resolved against the database's
// clock), and the events of that period that where selects, paged by
// pageEvents and scanned by scan, handed to build in one snapshot.
type eventReport struct {
	what, req string // "access report", "AccessReportRequest"
	from, to  time.Time
	maxRows   int
	back      func(to time.Time) time.Time // From's default
	cols      string
	// prepare, when set, runs first in the report's snapshot (resolving a
	// subject's pseudonyms, say), before where is called.
	prepare func(ctx context.Context, tx pgx.Tx) error
	where   func(b *whereBuilder) // conditions besides the period
	scan    func(pgx.Rows) (row []any, ts time.Time, id int64, err error)
	build   func(p period, rows [][]any) *Report
}

func (c *Client) eventReport(ctx context.Context, r eventReport) (*Report, error) {
	if err := checkPeriod(r.req, r.from, r.to, r.maxRows); err != nil {
		return nil, err
	}
	return c.readOnly(ctx, r.what, func(tx pgx.Tx, now time.Time) (*Report, error) {
		p, err := resolve(r.req, now, r.from, r.to, r.maxRows, r.back)
		if err != nil {
			return nil, err
		}
		if r.prepare != nil {
			if err := r.prepare(ctx, tx); err != nil {
				return nil, fmt.Errorf("client: %s: %w", r.what, err)
			}
		}
		rows, err := pageEvents(ctx, tx, r.what, r.cols, func(b *whereBuilder) {
			r.where(b)
			b.add(`"timestamp" >= ` + b.arg(p.from))
			b.add(`"timestamp" < ` + b.arg(p.to))
		}, p.maxRows, r.scan)
		if err != nil {
			return nil, err
		}
		return r.build(p, rows), nil
	})
}

// lastPeriod is the default period of access and activity reports.
func lastPeriod(to time.Time) time.Time { return to.Add(-ReportPeriodDefault) }

// subjectCondition adds internal/subject's condition (the one GDPR export
// and erasure use) with its arguments from subject.ArgsVisible, numbered
// after the parameters b already has.
func (b *whereBuilder) subjectCondition(args []any) {
	b.add(subject.WhereAt(len(b.args) + 1))
	b.args = append(b.args, args...)
}

// subjectReport resolves sub's ids in the report's snapshot for where's
// subjectCondition: the principal's write-time pseudonyms when the role may
// read them (resolved is then true).
type subjectReport struct {
	sub      subject.Subject
	args     []any
	resolved bool
}

func (s *subjectReport) prepare(ctx context.Context, tx pgx.Tx) (err error) {
	s.args, s.resolved, err = subject.ArgsVisible(ctx, tx, s.sub)
	return err
}

func (s *subjectReport) where(b *whereBuilder) { b.subjectCondition(s.args) }

// pseudonyms is how many write-time pseudonyms s resolved (the principal's
// own id not counted).
func (s *subjectReport) pseudonyms() int {
	ids, _ := s.args[0].([]string)
	return max(0, len(ids)-1)
}

// erasedNote explains how reports count erased subjects.
const erasedNote = "Ids that GDPR erasure replaced by a token (erased_ and 32 hex digits) are counted as events of erased subjects, never as individuals: one subject may hold several tokens, and nobody can tell whose they were."

// pseudonymsHiddenNote is the note of a report made by a role that may not
// resolve write-time pseudonyms.
const pseudonymsHiddenNote = "INCOMPLETE FOR PSEUDONYMISED ORGANIZATIONS: the role that made this report may not resolve write-time pseudonyms " +
	"(audit.pseudonyms; the audit_privacy_officer and audit_maintainer roles may), so events that organizations with write-time " +
	"pseudonymisation recorded under this principal's pseudonyms (psn_...) are not included. Have the privacy officer make the report for a complete one."

// tally counts events per key with the first and last timestamp, for the
// "by principal" and "by patient" sections; rows come oldest first.
type tally struct {
	order []string // keys in order of first appearance
	by    map[string]*tallied
}

type tallied struct {
	label            []any // what the section shows for the key
	events, failures int
	first, last      time.Time
}

// add counts an event at ts under key; label is kept from the key's first
// event.
func (t *tally) add(key string, ts time.Time, label ...any) *tallied {
	if t.by == nil {
		t.by = map[string]*tallied{}
	}
	e := t.by[key]
	if e == nil {
		e = &tallied{label: label, first: ts}
		t.by[key] = e
		t.order = append(t.order, key)
	}
	e.events++
	e.last = ts
	return e
}

// periodFields are the parameters every period report shows.
func periodFields(p period) []ReportField {
	return []ReportField{
		{Key: "from", Label: "From (inclusive)", Value: p.from},
		{Key: "to", Label: "To (exclusive)", Value: p.to},
	}
}

// str turns a nullable text column into a report value (nil stays nil, so
// JSON says null and the other formats print nothing).
func str(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// AccessReport lists every event on one resource in a period, oldest
// first: when, who (principal id and type), what (action), and the outcome
// (status and outcome description), with the source address and
// correlation id; the summary counts events, principals and outcomes, and a
// section totals events per principal.
func (c *Client) AccessReport(ctx context.Context, req AccessReportRequest) (*Report, error) {
	const name = "AccessReportRequest"
	if req.TargetResourceType == "" {
		req.TargetResourceType = "Patient"
	}
	if err := checkRequired(name, "TargetResourceType", req.TargetResourceType); err != nil {
		return nil, err
	}
	if err := checkRequired(name, "TargetResourceID", req.TargetResourceID); err != nil {
		return nil, err
	}
	target := &subjectReport{sub: subject.Subject{ResourceType: req.TargetResourceType, ResourceID: req.TargetResourceID}}
	return c.eventReport(ctx, eventReport{
		what: "access report", req: name, from: req.From, to: req.To, maxRows: req.MaxRows, back: lastPeriod,
		cols:    `principal_id, principal_type, action, status, outcome_description, host(source_ip), correlation_id`,
		prepare: target.prepare,
		where:   target.where,
		scan: func(r pgx.Rows) ([]any, time.Time, int64, error) {
			var (
				id                                         int64
				ts                                         time.Time
				principal, ptype, outcome, ip, correlation *string
				action, status                             string
			)
			err := r.Scan(&id, &ts, &principal, &ptype, &action, &status, &outcome, &ip, &correlation)
			ts = ts.UTC()
			return []any{ts, id, str(principal), str(ptype), action, status, str(outcome), str(ip), str(correlation)}, ts, id, err
		},
		build: func(p period, rows [][]any) *Report {
			var (
				per      tally
				statuses = map[string]int{}
				erased   int
			)
			for _, row := range rows {
				statuses[row[5].(string)]++
				if p, ok := row[2].(string); ok && subject.IsToken(p) {
					erased++
					continue
				}
				e := per.add(fmt.Sprint(row[2], "\x00", row[3]), row[0].(time.Time), row[2], row[3])
				if row[5] == string(StatusFailure) {
					e.failures++
				}
			}
			principals := make([][]any, len(per.order))
			for i, k := range per.order {
				e := per.by[k]
				principals[i] = slices.Concat(e.label, []any{e.events, e.failures, e.first, e.last})
			}
			return &Report{
				Kind:     "access",
				Title:    "Access report",
				Subtitle: "Every audit event on " + req.TargetResourceType + " " + req.TargetResourceID,
				Parameters: append([]ReportField{
					{Key: "target_resource_type", Label: "Resource type", Value: req.TargetResourceType},
					{Key: "target_resource_id", Label: "Resource id", Value: req.TargetResourceID},
				}, periodFields(p)...),
				Columns: []ReportColumn{
					{Key: "timestamp", Label: "Time (UTC)"}, {Key: "event_id", Label: "Event"},
					{Key: "principal_id", Label: "Who"}, {Key: "principal_type", Label: "Principal type"},
					{Key: "action", Label: "Action"}, {Key: "status", Label: "Status"},
					{Key: "outcome_description", Label: "Outcome"}, {Key: "source_ip", Label: "Source IP"},
					{Key: "correlation_id", Label: "Correlation id"},
				},
				Rows: rows,
				Summary: []ReportField{
					{Key: "events", Label: "Events", Value: len(rows)},
					{Key: "principals", Label: "Distinct principals", Value: len(per.order)},
					{Key: "success", Label: "Succeeded", Value: statuses[string(StatusSuccess)]},
					{Key: "failure", Label: "Failed", Value: statuses[string(StatusFailure)]},
					{Key: "attempt", Label: "Attempts (outcome not recorded)", Value: statuses[string(StatusAttempt)]},
					{Key: "erased_principal_events", Label: "Events by erased principals (not counted as principals)", Value: erased},
				},
				Sections: []ReportSection{{
					Title: "Events by principal",
					Columns: []ReportColumn{
						{Key: "principal_id", Label: "Who"}, {Key: "principal_type", Label: "Principal type"},
						{Key: "events", Label: "Events"}, {Key: "failures", Label: "Failed"},
						{Key: "first", Label: "First (UTC)"}, {Key: "last", Label: "Last (UTC)"},
					},
					Rows: principals,
				}},
				Notes: []string{
					"Events are those whose target resource is the one named, with timestamps in [From, To), oldest first, read from one database snapshot.",
					"Status is the outcome the application recorded: success, failure, or attempt (started, outcome not recorded).",
					"Events by principal leaves out events whose principal was erased. " + erasedNote,
				},
			}
		},
	})
}

// DisclosureReport is an accounting of disclosures (HIPAA 164.528) over a
// period, oldest first: date, individual, action, who disclosed, recipient,
// purpose and description. See DisclosureReportRequest for what counts as
// a disclosure. The summary counts disclosures, individuals and recipients,
// and the disclosures that lack a recipient or a purpose; a section totals
// them per individual.
func (c *Client) DisclosureReport(ctx context.Context, req DisclosureReportRequest) (*Report, error) {
	const name = "DisclosureReportRequest"
	if req.TargetResourceType == "" {
		req.TargetResourceType = "Patient"
	}
	if err := checkRequired(name, "TargetResourceType", req.TargetResourceType); err != nil {
		return nil, err
	}
	if req.TargetResourceID != "" {
		if err := checkRequired(name, "TargetResourceID", req.TargetResourceID); err != nil {
			return nil, err
		}
	}
	if req.Actions == nil {
		req.Actions = DisclosureActionsDefault
	}
	patterns, err := actionPatterns(name, req.Actions)
	if err != nil {
		return nil, err
	}
	return c.eventReport(ctx, eventReport{
		what: "disclosure report", req: name, from: req.From, to: req.To, maxRows: req.MaxRows,
		back: func(to time.Time) time.Time { return to.AddDate(-DisclosureLookbackYears, 0, 0) },
		cols: `target_resource_id, action, principal_id, details->>'recipient', details->>'purpose', outcome_description`,
		where: func(b *whereBuilder) {
			b.add(`data_classification = 'PHI'`)
			b.add(`status = 'success'`)
			b.add(`target_resource_type = ` + b.arg(req.TargetResourceType))
			if req.TargetResourceID != "" {
				b.add(`target_resource_id = ` + b.arg(req.TargetResourceID))
			}
			b.add(`action LIKE ANY (` + b.arg(patterns) + `::text[])`)
		},
		scan: func(r pgx.Rows) ([]any, time.Time, int64, error) {
			var (
				id                                            int64
				ts                                            time.Time
				action                                        string
				patient, principal, recipient, purpose, descr *string
			)
			err := r.Scan(&id, &ts, &patient, &action, &principal, &recipient, &purpose, &descr)
			ts = ts.UTC()
			return []any{ts, id, str(patient), action, str(principal), str(recipient), str(purpose), str(descr)}, ts, id, err
		},
		build: func(p period, rows [][]any) *Report {
			var (
				per                              tally
				recipients                       = map[string]bool{}
				withoutRecipient, withoutPurpose int
				erased                           int
			)
			for _, row := range rows {
				if id, ok := row[2].(string); ok && subject.IsToken(id) {
					erased++
				} else {
					per.add(fmt.Sprint(row[2]), row[0].(time.Time), row[2])
				}
				if r, ok := row[5].(string); ok && r != "" {
					recipients[r] = true
				} else {
					withoutRecipient++
				}
				if p, ok := row[6].(string); !ok || p == "" {
					withoutPurpose++
				}
			}
			patients := make([][]any, 0, len(per.order))
			for _, k := range slices.Sorted(slices.Values(per.order)) {
				e := per.by[k]
				patients = append(patients, slices.Concat(e.label, []any{e.events, e.first, e.last}))
			}

			params := []ReportField{{Key: "target_resource_type", Label: "Resource type", Value: req.TargetResourceType}}
			who := "every " + req.TargetResourceType
			if req.TargetResourceID != "" {
				params = append(params, ReportField{Key: "target_resource_id", Label: "Individual", Value: req.TargetResourceID})
				who = req.TargetResourceType + " " + req.TargetResourceID
			}
			params = append(params, periodFields(p)...)
			params = append(params, ReportField{Key: "actions", Label: "Disclosure actions", Value: strings.Join(req.Actions, ", ")})
			return &Report{
				Kind:       "disclosures",
				MainTitle:  "Disclosures",
				Title:      "Accounting of disclosures",
				Subtitle:   "Disclosures of protected health information (HIPAA 45 CFR 164.528) for " + who,
				Parameters: params,
				Columns: []ReportColumn{
					{Key: "timestamp", Label: "Date (UTC)"}, {Key: "event_id", Label: "Event"},
					{Key: "target_resource_id", Label: "Individual"}, {Key: "action", Label: "Action"},
					{Key: "principal_id", Label: "Disclosed by"}, {Key: "recipient", Label: "Recipient"},
					{Key: "purpose", Label: "Purpose"}, {Key: "outcome_description", Label: "Description"},
				},
				Rows: rows,
				Summary: []ReportField{
					{Key: "disclosures", Label: "Disclosures", Value: len(rows)},
					{Key: "individuals", Label: "Individuals", Value: len(per.order)},
					{Key: "recipients", Label: "Distinct recipients", Value: len(recipients)},
					{Key: "without_recipient", Label: "Without a recorded recipient", Value: withoutRecipient},
					{Key: "without_purpose", Label: "Without a recorded purpose", Value: withoutPurpose},
					{Key: "erased_individual_events", Label: "Disclosures about erased individuals (not counted as individuals)", Value: erased},
				},
				Sections: []ReportSection{{
					Title: "Disclosures by individual",
					Columns: []ReportColumn{
						{Key: "target_resource_id", Label: "Individual"}, {Key: "disclosures", Label: "Disclosures"},
						{Key: "first", Label: "First (UTC)"}, {Key: "last", Label: "Last (UTC)"},
					},
					Rows: patients,
				}},
				Notes: []string{
					"A disclosure is a successful event classified PHI on the resource type named, whose action matches one of the disclosure actions (* matches any text at the start or end).",
					"Recipient and purpose are the event details' \"recipient\" and \"purpose\"; 164.528(b)(2) asks for both, so disclosures without them are counted.",
					fmt.Sprintf("The default period is the %d years before the end of the period, as 164.528(a) allows an individual to ask for.", DisclosureLookbackYears),
					"Disclosures exempt from accounting (treatment, payment, health care operations, to the individual) are not distinguished: record them under other actions.",
					"Disclosures by individual leaves out individuals who were erased. " + erasedNote,
				},
			}
		},
	})
}

// actionPatterns turns disclosure action patterns into LIKE patterns. They
// use LIKE's default escape character, the backslash (LIKE ANY takes no
// ESCAPE clause); a parameter's value is not a string literal, so
// standard_conforming_strings does not change its meaning.
func actionPatterns(req string, actions []string) ([]string, error) {
	if len(actions) == 0 {
		return nil, fmt.Errorf("client: %s.Actions: must not be empty (nil uses the defaults)", req)
	}
	esc := strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`)
	out := make([]string, len(actions))
	for i, a := range actions {
		core := strings.TrimSuffix(strings.TrimPrefix(a, "*"), "*")
		if core == "" || strings.Contains(core, "*") {
			return nil, fmt.Errorf("client: %s.Actions[%d]: must be an action, with * only at its start or end", req, i)
		}
		p := esc.Replace(core)
		if strings.HasPrefix(a, "*") {
			p = "%" + p
		}
		if strings.HasSuffix(a, "*") {
			p += "%"
		}
		out[i] = p
	}
	return out, nil
}

// WorkforceActivityReport lists what one workforce member did in a period,
// oldest first, with a summary (events, PHI events, distinct patients and
// resources, failures) and a section per action counting events, distinct
// patients and failures, and one per patient counting events. A patient is
// a target resource of type Patient.
func (c *Client) WorkforceActivityReport(ctx context.Context, req ActivityReportRequest) (*Report, error) {
	const name = "ActivityReportRequest"
	if err := checkRequired(name, "PrincipalID", req.PrincipalID); err != nil {
		return nil, err
	}
	who := &subjectReport{sub: subject.Subject{PrincipalID: req.PrincipalID}}
	return c.eventReport(ctx, eventReport{
		what: "activity report", req: name, from: req.From, to: req.To, maxRows: req.MaxRows, back: lastPeriod,
		cols:    `principal_id, action, status, target_resource_type, target_resource_id, data_classification, outcome_description, host(source_ip)`,
		prepare: who.prepare,
		where:   who.where,
		scan: func(r pgx.Rows) ([]any, time.Time, int64, error) {
			var (
				id                      int64
				ts                      time.Time
				principal               string
				action, status, class   string
				rtype, rid, outcome, ip *string
			)
			err := r.Scan(&id, &ts, &principal, &action, &status, &rtype, &rid, &class, &outcome, &ip)
			ts = ts.UTC()
			return []any{ts, id, principal, action, status, str(rtype), str(rid), class, str(outcome), str(ip)}, ts, id, err
		},
		build: func(p period, rows [][]any) *Report {
			type byAction struct {
				events, failures int
				patients         map[string]bool
			}
			var (
				actions       = map[string]*byAction{}
				patients      tally
				resources     = map[string]bool{}
				phi, failures int
				erased        int
				pseudonymised int
			)
			for _, row := range rows {
				ts, action := row[0].(time.Time), row[3].(string)
				if row[2] != req.PrincipalID {
					pseudonymised++
				}
				ba := actions[action]
				if ba == nil {
					ba = &byAction{patients: map[string]bool{}}
					actions[action] = ba
				}
				ba.events++
				if row[4] == string(StatusFailure) {
					ba.failures++
					failures++
				}
				if row[7] == string(ClassificationPHI) {
					phi++
				}
				rtype, _ := row[5].(string)
				rid, isID := row[6].(string)
				if isID && subject.IsToken(rid) {
					erased++
					isID = false
				}
				if isID {
					resources[rtype+"\x00"+rid] = true
					if rtype == "Patient" {
						ba.patients[rid] = true
						patients.add(rid, ts, rid)
					}
				}
			}
			perAction := make([][]any, 0, len(actions))
			for _, a := range slices.Sorted(maps.Keys(actions)) {
				perAction = append(perAction, []any{a, actions[a].events, len(actions[a].patients), actions[a].failures})
			}
			perPatient := make([][]any, 0, len(patients.order))
			for _, k := range slices.Sorted(slices.Values(patients.order)) {
				e := patients.by[k]
				perPatient = append(perPatient, slices.Concat(e.label, []any{e.events, e.first, e.last}))
			}

			return &Report{
				Kind:     "activity",
				Title:    "Workforce activity report",
				Subtitle: "Every audit event by " + req.PrincipalID,
				Parameters: append([]ReportField{
					{Key: "principal_id", Label: "Workforce member", Value: req.PrincipalID},
					{Key: "pseudonyms_resolved", Label: "Write-time pseudonyms resolved", Value: who.resolved},
					{Key: "pseudonyms", Label: "Pseudonyms of the member", Value: who.pseudonyms()},
				}, periodFields(p)...),
				Columns: []ReportColumn{
					{Key: "timestamp", Label: "Time (UTC)"}, {Key: "event_id", Label: "Event"},
					{Key: "principal_id", Label: "Recorded as"},
					{Key: "action", Label: "Action"}, {Key: "status", Label: "Status"},
					{Key: "target_resource_type", Label: "Resource type"}, {Key: "target_resource_id", Label: "Resource"},
					{Key: "data_classification", Label: "Classification"}, {Key: "outcome_description", Label: "Outcome"},
					{Key: "source_ip", Label: "Source IP"},
				},
				Rows: rows,
				Summary: []ReportField{
					{Key: "events", Label: "Events", Value: len(rows)},
					{Key: "phi_events", Label: "Events on PHI", Value: phi},
					{Key: "patients", Label: "Distinct patients", Value: len(patients.order)},
					{Key: "resources", Label: "Distinct resources", Value: len(resources)},
					{Key: "failures", Label: "Failed", Value: failures},
					{Key: "pseudonymised_events", Label: "Events recorded under a pseudonym", Value: pseudonymised},
					{Key: "erased_patient_events", Label: "Events on erased resources (not counted as patients or resources)", Value: erased},
				},
				Sections: []ReportSection{{
					Title: "Events by action",
					Columns: []ReportColumn{
						{Key: "action", Label: "Action"}, {Key: "events", Label: "Events"},
						{Key: "patients", Label: "Distinct patients"}, {Key: "failures", Label: "Failed"},
					},
					Rows: perAction,
				}, {
					Title: "Events by patient",
					Columns: []ReportColumn{
						{Key: "target_resource_id", Label: "Patient"}, {Key: "events", Label: "Events"},
						{Key: "first", Label: "First (UTC)"}, {Key: "last", Label: "Last (UTC)"},
					},
					Rows: perPatient,
				}},
				Notes: activityNotes(who.resolved),
			}
		},
	})
}

func activityNotes(resolved bool) []string {
	notes := []string{
		"Events are those whose principal_id is the workforce member or one of their write-time pseudonyms (Recorded as shows which), " +
			"selected by the same condition as a GDPR export of the member, with timestamps in [From, To), oldest first, read from one database snapshot.",
		"A patient is a target resource of type Patient; events on other resources count as resources only.",
		erasedNote,
	}
	if !resolved {
		notes = append([]string{pseudonymsHiddenNote}, notes...)
	}
	return notes
}

// Attestation verdicts, the "verdict" of an attestation's summary.
const (
	// VerdictIntact: the newest verification is recent, covered every
	// chain with rows, and found nothing.
	VerdictIntact = "INTACT"
	// VerdictTampered: the newest verification of some chain found
	// tampering (open findings).
	VerdictTampered = "TAMPERED"
	// VerdictUnverified: no verification has finished.
	VerdictUnverified = "UNVERIFIED"
	// VerdictStale: the newest verification is older than MaxAge.
	VerdictStale = "STALE"
	// VerdictIncomplete: some chain with rows has never been verified.
	VerdictIncomplete = "INCOMPLETE"
)

// IntegrityAttestation states the integrity of the audit log as the
// database records it: the newest finished verification run (status, rows,
// findings, when), every chain's head, newest checkpoint and verified
// position (audit.integrity_status), the open findings (those of the newest
// run that covered their chain, at most AttestationFindingsMax listed), the
// archive manifests per chain, a verdict and a statement. The verdict is
// the first that applies of TAMPERED, UNVERIFIED, STALE, INCOMPLETE,
// INTACT (see the Verdict constants).
func (c *Client) IntegrityAttestation(ctx context.Context, req AttestationRequest) (*Report, error) {
	if req.MaxAge < 0 {
		return nil, errors.New("client: AttestationRequest.MaxAge: must not be negative")
	}
	if req.MaxAge == 0 {
		req.MaxAge = AttestationMaxAgeDefault
	}
	const what = "integrity attestation"
	return c.readOnly(ctx, what, func(tx pgx.Tx, now time.Time) (*Report, error) {
		wrap := func(err error) error { return fmt.Errorf("client: %s: %w", what, err) }

		var (
			run struct {
				id                int64
				mode, status      string
				started, finished time.Time
				rows              int64
				findings, chains  int
			}
			hasRun = true
		)
		err := tx.QueryRow(ctx, `SELECT id, mode, status, started_at, finished_at, rows_checked, findings_count,
			cardinality(chains) FROM audit.verification_runs
			WHERE status IN ('intact', 'tampered') AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1`).
			Scan(&run.id, &run.mode, &run.status, &run.started, &run.finished, &run.rows, &run.findings, &run.chains)
		if errors.Is(err, pgx.ErrNoRows) {
			hasRun = false
		} else if err != nil {
			return nil, wrap(err)
		}

		rows, err := tx.Query(ctx, `SELECT chain_id, head_seq, head_hash, last_checkpoint_seq, last_checkpoint_at,
			unsealed_rows, verified_seq, last_verified_at, findings, state
			FROM audit.integrity_status ORDER BY chain_id`)
		if err != nil {
			return nil, wrap(err)
		}
		var (
			chainRows                                  [][]any
			tampered, incomplete, checkpointed, behind int
			unsealed                                   int64
		)
		for rows.Next() {
			var (
				chain              int16
				head, unsealedRows int64
				hash, state        string
				cpSeq, verifiedSeq *int64
				cpAt, verifiedAt   *time.Time
				findings           int
			)
			if err := rows.Scan(&chain, &head, &hash, &cpSeq, &cpAt, &unsealedRows, &verifiedSeq, &verifiedAt, &findings, &state); err != nil {
				rows.Close()
				return nil, wrap(err)
			}
			switch {
			case state == "tampered":
				tampered++
			case state == "unverified" && head > 0:
				incomplete++
			case state == "behind":
				behind++
			}
			if cpSeq != nil {
				checkpointed++
			}
			unsealed += unsealedRows
			chainRows = append(chainRows, []any{chain, head, hash, optInt(cpSeq), optTime(cpAt), unsealedRows,
				optInt(verifiedSeq), optTime(verifiedAt), findings, state})
		}
		if err := rows.Err(); err != nil {
			return nil, wrap(err)
		}

		var openFindings int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM audit.verification_findings f
			JOIN audit.integrity_status s ON s.chain_id = f.chain_id AND s.last_run_id = f.run_id`).Scan(&openFindings); err != nil {
			return nil, wrap(err)
		}
		rows, err = tx.Query(ctx, `SELECT f.run_id, f.chain_id, f.chain_seq, f.row_id, f.kind, f.detail
			FROM audit.verification_findings f
			JOIN audit.integrity_status s ON s.chain_id = f.chain_id AND s.last_run_id = f.run_id
			ORDER BY f.chain_id, f.chain_seq NULLS LAST, f.kind LIMIT $1`, AttestationFindingsMax)
		if err != nil {
			return nil, wrap(err)
		}
		findingRows, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) {
			var (
				runID        int64
				chain        int16
				seq, rowID   *int64
				kind, detail string
			)
			err := r.Scan(&runID, &chain, &seq, &rowID, &kind, &detail)
			return []any{runID, chain, optInt(seq), optInt(rowID), kind, detail}, err
		})
		if err != nil {
			return nil, wrap(err)
		}

		rows, err = tx.Query(ctx, `SELECT chain_id, count(*), min(first_seq), max(last_seq), sum(row_count)::bigint, max(created_at)
			FROM audit.archive_manifests GROUP BY chain_id ORDER BY chain_id`)
		if err != nil {
			return nil, wrap(err)
		}
		var manifests, archived int64
		manifestRows, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) {
			var (
				chain                   int16
				n, first, last, rowsSum int64
				newest                  time.Time
			)
			err := r.Scan(&chain, &n, &first, &last, &rowsSum, &newest)
			manifests += n
			archived += rowsSum
			return []any{chain, n, first, last, rowsSum, newest.UTC()}, err
		})
		if err != nil {
			return nil, wrap(err)
		}

		var checkpoints int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM audit.integrity_checkpoints`).Scan(&checkpoints); err != nil {
			return nil, wrap(err)
		}

		runSection, runNote, untrusted, err := attestationRunSeals(ctx, tx, req.Keys)
		if err != nil {
			return nil, wrap(err)
		}

		age := time.Duration(0)
		if hasRun {
			age = now.Sub(run.finished)
		}
		verdict := VerdictIntact
		switch {
		case tampered > 0 || openFindings > 0 || untrusted > 0:
			verdict = VerdictTampered
		case !hasRun:
			verdict = VerdictUnverified
		case age > req.MaxAge:
			verdict = VerdictStale
		case incomplete > 0:
			verdict = VerdictIncomplete
		}

		summary := []ReportField{{Key: "verdict", Label: "Verdict", Value: verdict}}
		var statement string
		if hasRun {
			summary = append(summary,
				ReportField{Key: "last_run_id", Label: "Newest verification run", Value: run.id},
				ReportField{Key: "last_run_mode", Label: "Mode", Value: run.mode},
				ReportField{Key: "last_run_status", Label: "Result", Value: run.status},
				ReportField{Key: "last_run_started_at", Label: "Started", Value: run.started.UTC()},
				ReportField{Key: "last_run_finished_at", Label: "Finished", Value: run.finished.UTC()},
				ReportField{Key: "last_run_age_seconds", Label: "Age (seconds)", Value: int64(age.Seconds())},
				ReportField{Key: "last_run_rows_checked", Label: "Rows checked", Value: run.rows},
				ReportField{Key: "last_run_chains", Label: "Chains covered", Value: run.chains},
				ReportField{Key: "last_run_findings", Label: "Findings of that run", Value: run.findings},
			)
			statement = fmt.Sprintf("Verification run %d (%s) finished %s, %s before this report, recomputed the hash chains of %d rows over %d chains and found %d findings (%s).",
				run.id, run.mode, report.FormatTime(run.finished), age.Round(time.Second), run.rows, run.chains, run.findings, run.status)
		} else {
			summary = append(summary, ReportField{Key: "last_run_id", Label: "Newest verification run", Value: nil})
			statement = "NO VERIFICATION HAS RUN: nothing here attests to the integrity of the log. Run `auditworker verify`."
		}
		summary = append(summary,
			ReportField{Key: "max_age_seconds", Label: "Freshness threshold (seconds)", Value: int64(req.MaxAge.Seconds())},
			ReportField{Key: "chains", Label: "Chains", Value: len(chainRows)},
			ReportField{Key: "chains_tampered", Label: "Chains tampered", Value: tampered},
			ReportField{Key: "chains_behind", Label: "Chains with rows written after their verification", Value: behind},
			ReportField{Key: "chains_never_verified", Label: "Chains with rows never verified", Value: incomplete},
			ReportField{Key: "open_findings", Label: "Open findings", Value: openFindings},
			ReportField{Key: "untrusted_runs", Label: "Verification records that cannot be trusted", Value: untrusted},
			ReportField{Key: "checkpoints", Label: "Checkpoints", Value: checkpoints},
			ReportField{Key: "chains_checkpointed", Label: "Chains with a checkpoint", Value: checkpointed},
			ReportField{Key: "unsealed_rows", Label: "Rows after the newest checkpoints", Value: unsealed},
			ReportField{Key: "archive_manifests", Label: "Archive manifests", Value: manifests},
			ReportField{Key: "archived_rows", Label: "Rows archived under manifests", Value: archived},
		)
		statement = "Verdict " + verdict + ". " + statement
		switch verdict {
		case VerdictTampered:
			if tampered > 0 || openFindings > 0 {
				statement += fmt.Sprintf(" TAMPERED: %d open findings on %d chains; see Open findings.", openFindings, tampered)
			}
			if untrusted > 0 {
				statement += fmt.Sprintf(" TAMPERED: %d verification records cannot be trusted (changed after the verifier wrote them, or unsealed); see that section.", untrusted)
			}
		case VerdictStale:
			statement += fmt.Sprintf(" STALE: the newest verification is older than %s.", req.MaxAge)
		case VerdictIncomplete:
			statement += fmt.Sprintf(" INCOMPLETE: %d chains hold rows that no verification has covered.", incomplete)
		}
		var notes []string
		if openFindings > int64(len(findingRows)) {
			notes = append(notes, fmt.Sprintf("Open findings lists the first %d of %d.", len(findingRows), openFindings))
		}
		notes = append(notes,
			"A chain marked behind is verified up to its verified seq; rows after it are covered by the next verification.",
			runNote,
			"This attestation reads what the database records about verification. Independent assurance comes from running `auditworker verify` with the seal keys, which recomputes every hash and checks the checkpoint MACs made with keys kept outside the database.",
		)

		return &Report{
			Kind:     "attestation",
			Title:    "Integrity attestation",
			Subtitle: "Tamper-evidence of the audit log: verification, hash chains, checkpoints, archives",
			Parameters: []ReportField{
				{Key: "max_age", Label: "Freshness threshold", Value: req.MaxAge.String()},
			},
			Statement: statement,
			Verdict:   verdict,
			MainTitle: "Hash chains",
			Columns: []ReportColumn{
				{Key: "chain_id", Label: "Chain"}, {Key: "head_seq", Label: "Head seq"}, {Key: "head_hash", Label: "Head hash"},
				{Key: "last_checkpoint_seq", Label: "Checkpoint seq"}, {Key: "last_checkpoint_at", Label: "Checkpoint at (UTC)"},
				{Key: "unsealed_rows", Label: "Unsealed rows"}, {Key: "verified_seq", Label: "Verified seq"},
				{Key: "last_verified_at", Label: "Verified at (UTC)"}, {Key: "findings", Label: "Findings"}, {Key: "state", Label: "State"},
			},
			Rows:    chainRows,
			Summary: summary,
			Sections: []ReportSection{
				{
					Title: "Open findings",
					Columns: []ReportColumn{
						{Key: "run_id", Label: "Run"}, {Key: "chain_id", Label: "Chain"}, {Key: "chain_seq", Label: "Seq"},
						{Key: "row_id", Label: "Row id"}, {Key: "kind", Label: "Kind"}, {Key: "detail", Label: "Detail"},
					},
					Rows: findingRows,
				},
				{
					Title: "Archive manifests",
					Columns: []ReportColumn{
						{Key: "chain_id", Label: "Chain"}, {Key: "manifests", Label: "Manifests"}, {Key: "first_seq", Label: "First seq"},
						{Key: "last_seq", Label: "Last seq"}, {Key: "rows", Label: "Rows"}, {Key: "newest", Label: "Newest (UTC)"},
					},
					Rows: manifestRows,
				},
				runSection,
			},
			Notes: notes,
		}, nil
	})
}

func optInt(v *int64) any {
	if v == nil {
		return nil
	}
	return *v
}

func optTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC()
}

// integrityLine is the footer of every report: the chains by state and the
// newest finished verification, as the database records them.
func integrityLine(ctx context.Context, tx pgx.Tx) (string, error) {
	var chains, intact, behind, unverified, tampered int
	err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'intact'),
		count(*) FILTER (WHERE state = 'behind'), count(*) FILTER (WHERE state = 'unverified'),
		count(*) FILTER (WHERE state = 'tampered') FROM audit.integrity_status`).
		Scan(&chains, &intact, &behind, &unverified, &tampered)
	if err != nil {
		return "", fmt.Errorf("integrity status: %w", err)
	}
	line := fmt.Sprintf("%d chains: %d intact, %d behind, %d unverified, %d tampered; ", chains, intact, behind, unverified, tampered)
	var (
		id       int64
		status   string
		finished time.Time
	)
	err = tx.QueryRow(ctx, `SELECT id, status, finished_at FROM audit.verification_runs
		WHERE status IN ('intact', 'tampered') AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1`).Scan(&id, &status, &finished)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return line + "no verification has run", nil
	case err != nil:
		return "", fmt.Errorf("integrity status: %w", err)
	}
	return line + fmt.Sprintf("newest verification run %d %s, finished %s", id, status, report.FormatTime(finished)), nil
}
