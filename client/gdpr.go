package client

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditdb/auditdb/internal/report"
	"github.com/auditdb/auditdb/internal/subject"
)

// HoldScope says what a legal hold covers.
type HoldScope string

// Hold scopes.
const (
	// HoldSubject covers every event whose principal or target resource id
	// is the value.
	HoldSubject HoldScope = "subject"
	// HoldResource covers the events on one target resource (type and id).
	HoldResource HoldScope = "resource"
	// HoldOrganization covers every event of an organization.
	HoldOrganization HoldScope = "organization"
)

// LegalHold blocks GDPR erasure of the events it covers (litigation,
// investigation, a regulator's order) until it is released.
type LegalHold struct {
	ID                 int64      `json:"id"`
	Scope              HoldScope  `json:"scope"`
	Value              string     `json:"value"`
	TargetResourceType string     `json:"target_resource_type,omitempty"`
	Reason             string     `json:"reason"`
	CreatedBy          string     `json:"created_by"`
	CreatedAt          time.Time  `json:"created_at"`
	ReleasedAt         *time.Time `json:"released_at,omitempty"`
}

// PlaceHold records a legal hold and returns its id.
func (c *Client) PlaceHold(ctx context.Context, h LegalHold) (int64, error) {
	switch h.Scope {
	case HoldSubject, HoldOrganization:
		if h.TargetResourceType != "" {
			return 0, invalid("legal_holds.target_resource_type", "only for scope resource")
		}
	case HoldResource:
		if h.TargetResourceType == "" {
			return 0, invalid("legal_holds.target_resource_type", "required for scope resource")
		}
	default:
		return 0, invalid("legal_holds.scope", "must be subject, resource or organization")
	}
	if h.Value == "" || len(h.Value) > 255 {
		return 0, invalid("legal_holds.value", "required, at most 255 characters")
	}
	if h.Reason == "" || len(h.Reason) > 1000 {
		return 0, invalid("legal_holds.reason", "required, at most 1000 characters")
	}
	var id int64
	err := c.pool.QueryRow(ctx, `INSERT INTO audit.legal_holds (scope, value, target_resource_type, reason)
		VALUES ($1, $2, $3, $4) RETURNING id`, h.Scope, h.Value, nullable(h.TargetResourceType), h.Reason).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("client: place legal hold: %w", err)
	}
	return id, nil
}

// ReleaseHold releases hold id. Released holds stay on record.
func (c *Client) ReleaseHold(ctx context.Context, id int64) error {
	tag, err := c.pool.Exec(ctx, `UPDATE audit.legal_holds SET released_at = now(), released_by = current_user
		WHERE id = $1 AND released_at IS NULL`, id)
	if err != nil {
		return fmt.Errorf("client: release legal hold %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("client: release legal hold %d: no such active hold", id)
	}
	return nil
}

// Holds lists legal holds, the active ones only unless all is true.
func (c *Client) Holds(ctx context.Context, all bool) ([]LegalHold, error) {
	rows, err := c.pool.Query(ctx, `SELECT id, scope, value, coalesce(target_resource_type, ''), reason, created_by, created_at, released_at
		FROM audit.legal_holds WHERE $1 OR released_at IS NULL ORDER BY id`, all)
	if err != nil {
		return nil, fmt.Errorf("client: legal holds: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (LegalHold, error) {
		var h LegalHold
		err := r.Scan(&h.ID, &h.Scope, &h.Value, &h.TargetResourceType, &h.Reason, &h.CreatedBy, &h.CreatedAt, &h.ReleasedAt)
		return h, err
	})
}

// ErasureRequest is a GDPR art. 17 request as recorded. The subject's id is
// not part of it: the table keeps it only while the request is open.
type ErasureRequest struct {
	ID          int64      `json:"id"`
	Status      string     `json:"status"`
	RowsTotal   int64      `json:"rows_total"`
	RowsDone    int64      `json:"rows_done"`
	Token       string     `json:"token,omitempty"`
	RequestedAt time.Time  `json:"requested_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	Error       string     `json:"error,omitempty"`
}

// ErrLegalHold is wrapped when a legal hold blocks an erasure request (the
// worker's erasure job wraps the same error).
var ErrLegalHold = subject.ErrLegalHold

// Subject names a data subject as audit rows record people: as the
// principal who acted (PrincipalID, which also reaches rows written under
// the principal's write-time pseudonyms), as the resource acted on
// (ResourceType with ResourceID: Patient/42, never Invoice/42), or both.
// Its values are personal data.
type Subject = subject.Subject

// RequestErasure records an erasure request for sub and returns its id;
// the worker's erasure job carries it out with the seal key, which the
// client does not hold. It is refused at once, with ErrLegalHold naming the
// holds, when an active hold covers the subject; the job checks again
// before every batch, since a hold may come later. Resolving pseudonyms
// needs the audit_maintainer or audit_privacy_officer role.
func (c *Client) RequestErasure(ctx context.Context, sub Subject, reason string) (int64, error) {
	if err := sub.Validate(); err != nil {
		return 0, err
	}
	if reason == "" || len(reason) > 1000 {
		return 0, invalid("erasure_requests.reason", "required, at most 1000 characters")
	}
	if err := subject.CheckGDPR(ctx, c.pool); err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	args, err := subject.Args(ctx, c.pool, sub)
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	holds, err := subject.Holds(ctx, c.pool, args)
	if err != nil {
		return 0, fmt.Errorf("client: erasure request: %w", err)
	}
	if len(holds) > 0 {
		return 0, fmt.Errorf("client: %w (legal hold %s)", ErrLegalHold, strings.Join(holds, ", "))
	}
	var id int64
	err = c.pool.QueryRow(ctx, `INSERT INTO audit.erasure_requests (principal_id, resource_type, resource_id, reason)
		VALUES ($1, $2, $3, $4) RETURNING id`, nullable(sub.PrincipalID), nullable(sub.ResourceType), nullable(sub.ResourceID), reason).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("client: erasure request: %w", err)
	}
	return id, nil
}

// ErasureStatus returns request id as recorded.
func (c *Client) ErasureStatus(ctx context.Context, id int64) (ErasureRequest, error) {
	var r ErasureRequest
	var token, errText *string
	err := c.pool.QueryRow(ctx, `SELECT id, status, rows_total, rows_done, token, requested_at, finished_at, error
		FROM audit.erasure_requests WHERE id = $1`, id).
		Scan(&r.ID, &r.Status, &r.RowsTotal, &r.RowsDone, &token, &r.RequestedAt, &r.FinishedAt, &errText)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("client: erasure request %d: no such request", id)
	}
	if err != nil {
		return r, fmt.Errorf("client: erasure request %d: %w", id, err)
	}
	r.Token, r.Error = deref(token), deref(errText)
	return r, nil
}

// ExportFormat is the format of ExportSubject's output.
type ExportFormat string

// Export formats.
const (
	// ExportJSON writes one JSON document: the subject's events, each with
	// its inclusion proof, then the summary.
	ExportJSON ExportFormat = "json"
	// ExportCSV writes one CSV row per event, the proof as a JSON column.
	ExportCSV ExportFormat = "csv"
)

// ExportSummary counts a subject's events (GDPR art. 15: what is processed,
// how much, when).
type ExportSummary struct {
	Events      int64            `json:"events"`
	AsPrincipal int64            `json:"as_principal"`
	AsTarget    int64            `json:"as_target"`
	ByAction    map[string]int64 `json:"by_action"`
	// ByMonth is keyed "YYYY-MM" (UTC).
	ByMonth map[string]int64 `json:"by_month"`
	First   *time.Time       `json:"first,omitempty"`
	Last    *time.Time       `json:"last,omitempty"`
	// Unsealed counts the events whose inclusion proof no checkpoint
	// covers yet (proof_status "not yet sealed"): see ProofNotYetSealed.
	Unsealed int64 `json:"unsealed_proofs"`
}

// The proof_status of an exported event.
const (
	// ProofSealed: the proof ends at a checkpoint, whose MAC a holder of
	// the seal key checks (VerifyInclusionProof with keys).
	ProofSealed = "sealed"
	// ProofNotYetSealed: no checkpoint covers the event yet (it was written
	// within a seal interval of the export); the proof ends at the chain
	// head, which nobody has sealed, so it shows the event is in the chain
	// but not that the chain was not rewritten. See UnsealedNote.
	ProofNotYetSealed = "not yet sealed"
)

// UnsealedNote is what an export says when some proofs are not yet sealed,
// and what to do about it.
const UnsealedNote = "not yet sealed: %d of the events were written after the newest checkpoint of their chain, so their inclusion proofs end at the chain head " +
	"and carry no sealed checkpoint. Wait for the worker's next seal (every 10 s by default) or run `auditworker seal`, then export again for proofs that all end at a checkpoint."

// ExportedEvent is one element of a JSON export's "events": the subject's
// role in the event (principal, target, principal_and_target), the event
// and its inclusion proof, and whether a checkpoint covers the proof
// (ProofSealed or ProofNotYetSealed).
type ExportedEvent struct {
	Role        string          `json:"role"`
	Event       StoredEvent     `json:"event"`
	ProofStatus string          `json:"proof_status"`
	Proof       *InclusionProof `json:"inclusion_proof"`
}

// exportPage bounds the events read per query; the export streams page by
// page, so its memory does not grow with the subject's history.
const exportPage = 500

// ExportSubject writes every event of sub (GDPR art. 15 and 20: as the
// principal, under a write-time pseudonym, or as the target resource),
// oldest first, each with its inclusion proof, to w in format, and returns
// the summary (which the JSON format also carries). The export streams:
// events are read a page at a time.
func (c *Client) ExportSubject(ctx context.Context, sub Subject, format ExportFormat, w io.Writer) (*ExportSummary, error) {
	if err := sub.Validate(); err != nil {
		return nil, err
	}
	if format != ExportJSON && format != ExportCSV {
		return nil, invalid("format", "must be json or csv")
	}
	if err := subject.CheckGDPR(ctx, c.pool); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	var sum *ExportSummary
	// One snapshot: the pages and every proof agree with each other.
	err := pgx.BeginTxFunc(ctx, c.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		sum, err = exportSubject(ctx, tx, sub, format, w)
		return err
	})
	return sum, err
}

func exportSubject(ctx context.Context, tx pgx.Tx, sub Subject, format ExportFormat, w io.Writer) (*ExportSummary, error) {
	args, err := subject.Args(ctx, tx, sub)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	ids := args[0].([]string)
	sum := &ExportSummary{ByAction: map[string]int64{}, ByMonth: map[string]int64{}}
	var (
		cw    *csv.Writer
		first = true
	)
	switch format {
	case ExportJSON:
		if _, err := fmt.Fprintf(w, "{\"format\":\"auditdb-subject-export\",\"version\":1,\"generated_at\":%q,\"events\":[", time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			return nil, err
		}
	case ExportCSV:
		cw = csv.NewWriter(w)
		if err := cw.Write([]string{"id", "timestamp", "action", "status", "role", "principal_id", "principal_type",
			"organization_id", "target_resource_type", "target_resource_id", "source_ip", "outcome_description",
			"details", "data_classification", "chain_id", "chain_seq", "hash", "proof_status", "inclusion_proof"}); err != nil {
			return nil, err
		}
	}
	after := Cursor{Timestamp: time.Unix(-62135596800, 0).UTC()} // year 1
	for {
		rows, err := tx.Query(ctx, `SELECT `+selectColumns+` FROM audit.audit_log l
			WHERE `+subject.Where+` AND ("timestamp", id) > ($4, $5)
			ORDER BY "timestamp", id LIMIT $6`, append(args, after.Timestamp, after.ID, exportPage)...)
		if err != nil {
			return nil, fmt.Errorf("client: export: %w", err)
		}
		page, err := pgx.CollectRows(rows, scanEvent)
		if err != nil {
			return nil, fmt.Errorf("client: export: %w", err)
		}
		for _, e := range page {
			proof, err := buildProof(ctx, tx, e.ID, nil)
			if err != nil {
				return nil, err
			}
			asPrincipal := slices.Contains(ids, e.PrincipalID)
			asTarget := sub.ResourceID != "" && e.TargetResourceType == sub.ResourceType && e.TargetResourceID == sub.ResourceID
			role := "target"
			switch {
			case asPrincipal && asTarget:
				role = "principal_and_target"
			case asPrincipal:
				role = "principal"
			}
			if asPrincipal {
				sum.AsPrincipal++
			}
			if asTarget {
				sum.AsTarget++
			}
			sum.count(e)
			status := ProofSealed
			if proof.Checkpoint == nil {
				status = ProofNotYetSealed
				sum.Unsealed++
			}
			switch format {
			case ExportJSON:
				b, err := json.Marshal(ExportedEvent{Role: role, Event: e, ProofStatus: status, Proof: proof})
				if err != nil {
					return nil, err
				}
				if !first {
					b = append([]byte{','}, b...)
				}
				first = false
				if _, err := w.Write(b); err != nil {
					return nil, err
				}
			case ExportCSV:
				p, err := json.Marshal(proof)
				if err != nil {
					return nil, err
				}
				d := ""
				if e.Details != nil {
					db, _ := json.Marshal(e.Details)
					d = string(db)
				}
				ip := ""
				if e.SourceIP.IsValid() {
					ip = e.SourceIP.String()
				}
				if err := cw.Write(csvSafe([]string{strconv.FormatInt(e.ID, 10), e.Timestamp.Format(time.RFC3339Nano), e.Action,
					string(e.Status), role, e.PrincipalID, e.PrincipalType, e.OrganizationID, e.TargetResourceType,
					e.TargetResourceID, ip, e.OutcomeDescription, d, string(e.DataClassification),
					strconv.Itoa(int(e.ChainID)), strconv.FormatInt(e.ChainSeq, 10), e.Hash, status, string(p)})); err != nil {
					return nil, err
				}
			}
		}
		if len(page) < exportPage {
			break
		}
		last := page[len(page)-1]
		after = Cursor{Timestamp: last.Timestamp, ID: last.ID}
	}
	switch format {
	case ExportJSON:
		b, err := json.Marshal(sum)
		if err != nil {
			return nil, err
		}
		notes := []string{}
		if sum.Unsealed > 0 {
			notes = append(notes, fmt.Sprintf(UnsealedNote, sum.Unsealed))
		}
		nb, err := json.Marshal(notes)
		if err != nil {
			return nil, err
		}
		if _, err := fmt.Fprintf(w, "],\"summary\":%s,\"notes\":%s}\n", b, nb); err != nil {
			return nil, err
		}
	case ExportCSV:
		cw.Flush()
		if err := cw.Error(); err != nil {
			return nil, err
		}
	}
	return sum, nil
}

func (s *ExportSummary) count(e StoredEvent) {
	s.Events++
	s.ByAction[e.Action]++
	s.ByMonth[e.Timestamp.UTC().Format("2006-01")]++
	if s.First == nil {
		t := e.Timestamp
		s.First = &t
	}
	t := e.Timestamp
	s.Last = &t
}

// csvSafe defuses spreadsheet formulas in every cell (values written by
// anyone into an audit event never run where the export is opened).
func csvSafe(cells []string) []string {
	for i, c := range cells {
		cells[i] = report.DefuseFormula(c)
	}
	return cells
}

// EnablePseudonymisation makes the database replace principal ids of
// organization's new events by keyed pseudonyms ('psn_' and 32 hex digits)
// before they are stored and hashed. The mapping is readable only by the
// audit_privacy_officer role. Needs the audit_maintainer role or the owner.
func (c *Client) EnablePseudonymisation(ctx context.Context, organization string) error {
	if _, err := c.pool.Exec(ctx, `SELECT audit.enable_pseudonymisation($1)`, organization); err != nil {
		return fmt.Errorf("client: enable pseudonymisation: %w", err)
	}
	return nil
}

// DisablePseudonymisation stops pseudonymising organization's new events;
// earlier pseudonyms stay resolvable.
func (c *Client) DisablePseudonymisation(ctx context.Context, organization string) error {
	if _, err := c.pool.Exec(ctx, `SELECT audit.disable_pseudonymisation($1)`, organization); err != nil {
		return fmt.Errorf("client: disable pseudonymisation: %w", err)
	}
	return nil
}

// ComplianceModes are the database's HIPAA and GDPR switches.
type ComplianceModes struct {
	HIPAA bool `json:"hipaa_enabled"`
	GDPR  bool `json:"gdpr_enabled"`
}

// SetCompliance switches the database's modes (nil leaves one unchanged)
// and returns them. HIPAA on: PHI events need a principal and a target, and
// PHI retention policies keep at least six years. GDPR off: erasure is
// refused.
func (c *Client) SetCompliance(ctx context.Context, hipaa, gdpr *bool) (ComplianceModes, error) {
	var m ComplianceModes
	err := c.pool.QueryRow(ctx, `SELECT hipaa_enabled, gdpr_enabled FROM audit.set_compliance($1, $2)`, hipaa, gdpr).Scan(&m.HIPAA, &m.GDPR)
	if err != nil {
		return m, fmt.Errorf("client: set compliance: %w", err)
	}
	return m, nil
}
