// Package subject names a GDPR data subject the way audit rows record
// people: as the principal who acted, as the resource acted on (type and
// id), or both. Erasure and export select rows with the same condition, so
// both reach exactly the same rows: never a row of another type that shares
// an id (Patient/42 is not Invoice/42).
package subject

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	auditsql "github.com/auditdb/auditdb/sql"
)

// Subject is a data subject. Values are personal data: never log them.
type Subject struct {
	// PrincipalID selects rows whose principal_id is it, or one of its
	// write-time pseudonyms.
	PrincipalID string `json:"principal_id,omitempty"`
	// ResourceType and ResourceID select rows whose target resource is
	// them; both or neither.
	ResourceType string `json:"resource_type,omitempty"`
	ResourceID   string `json:"resource_id,omitempty"`
}

// Validate checks that s selects something, naming the field and the rule.
func (s Subject) Validate() error {
	switch {
	case s.PrincipalID == "" && s.ResourceID == "" && s.ResourceType == "":
		return errors.New("subject: principal_id, or resource_type with resource_id, is required")
	case (s.ResourceType == "") != (s.ResourceID == ""):
		return errors.New("subject: resource_type and resource_id: give both or neither")
	case len(s.PrincipalID) > 255 || len(s.ResourceType) > 255 || len(s.ResourceID) > 255:
		return errors.New("subject: ids and type: at most 255 characters")
	}
	return nil
}

// Where is the condition on audit.audit_log (aliased l) selecting the
// subject's rows, given $1 the principal ids (text[]: the id and its
// pseudonyms; empty when none), $2 the resource type and $3 the resource id
// (NULL when the subject has none, so that no row matches that half).
// Both halves use an index: (principal_id, timestamp) and
// (target_resource_type, target_resource_id, timestamp).
const Where = `(l.principal_id = ANY($1) OR (l.target_resource_type = $2 AND l.target_resource_id = $3))`

// WhereAt is Where with its parameters numbered from $n instead of $1, for
// statements that have parameters of their own before the subject's (the
// reports build theirs as they go). It is the same condition, renumbered.
func WhereAt(n int) string {
	if n == 1 {
		return Where
	}
	p := func(i int) string { return "$" + strconv.Itoa(n+i) }
	return strings.NewReplacer("$1", p(0), "$2", p(1), "$3", p(2)).Replace(Where)
}

// TokenPrefix starts every erasure token (see Token): an id that starts
// with it is an erased subject, not an individual.
const TokenPrefix = "erased_"

// IsToken reports whether id is an erasure token ("erased_" and 32 hex
// digits): reports count such ids apart, never as individuals, since one
// erased subject may hold several (one per seal key) and nobody can tell
// whose they were.
func IsToken(id string) bool {
	hexPart, ok := strings.CutPrefix(id, TokenPrefix)
	if !ok || len(hexPart) != 32 {
		return false
	}
	for _, r := range hexPart {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// holdCovers is the condition that active legal hold h covers row l: a hold
// on a subject (an id as principal or as target resource), on one resource
// (type and id), or on an organization.
const holdCovers = `((h.scope = 'subject' AND (h.value = l.principal_id OR h.value = l.target_resource_id))
	OR (h.scope = 'resource' AND h.target_resource_type = l.target_resource_type AND h.value = l.target_resource_id)
	OR (h.scope = 'organization' AND h.value = l.organization_id))`

// RowHeld is the condition that an active legal hold covers row l of
// audit.audit_log: retention never disposes of such a row.
const RowHeld = `EXISTS (SELECT 1 FROM audit.legal_holds h WHERE h.released_at IS NULL AND ` + holdCovers + `)`

// heldBySQL lists the active legal holds that cover a subject or any of
// their events, given Where's arguments: a hold on the subject itself (even
// with no event yet) or one that covers a row of theirs.
const heldBySQL = `SELECT h.id, h.scope FROM audit.legal_holds h
	WHERE h.released_at IS NULL AND (
		(h.scope = 'subject' AND (h.value = ANY($1) OR h.value = $3))
		OR EXISTS (SELECT 1 FROM audit.audit_log l WHERE ` + Where + ` AND ` + holdCovers + `))
	ORDER BY h.id`

// ErrLegalHold is wrapped when a legal hold blocks an erasure.
var ErrLegalHold = errors.New("erasure refused: a legal hold covers the subject's events")

// ErrGDPROff is returned when audit.settings has gdpr_enabled = false.
var ErrGDPROff = errors.New("erasure and export refused: GDPR mode is off (AUDIT_GDPR_ENABLED=false)")

// Querier is a pool, a connection or a transaction.
type Querier interface {
	QueryRow(context.Context, string, ...any) pgx.Row
	Query(context.Context, string, ...any) (pgx.Rows, error)
}

// CheckGDPR returns ErrGDPROff when the database's GDPR mode is off.
func CheckGDPR(ctx context.Context, q Querier) error {
	var on bool
	if err := q.QueryRow(ctx, `SELECT coalesce((SELECT value FROM audit.settings WHERE key = 'gdpr_enabled'), 'true') = 'true'`).Scan(&on); err != nil {
		return fmt.Errorf("gdpr mode: %w", err)
	}
	if !on {
		return ErrGDPROff
	}
	return nil
}

// ErrPseudonymsHidden is returned (wrapped) by Args when the role may not
// resolve write-time pseudonyms.
var ErrPseudonymsHidden = errors.New("subject: resolving write-time pseudonyms needs the audit_maintainer or audit_privacy_officer role")

var (
	queryPseudonymsResolvable = auditsql.MustQuery("SubjectPseudonymsResolvable")
	queryPrincipalIDs         = auditsql.MustQuery("SubjectPrincipalIDs")
)

// Args returns Where's arguments for s: the principal's ids with their
// write-time pseudonyms (audit.subject_principal_ids, callable by the
// worker and the privacy officer only), the resource type and id. A role
// that may not resolve pseudonyms gets ErrPseudonymsHidden: erasure and
// export must reach every row of the subject or none.
func Args(ctx context.Context, q Querier, s Subject) ([]any, error) {
	args, resolved, err := ArgsVisible(ctx, q, s)
	if err != nil {
		return nil, err
	}
	if !resolved {
		return nil, ErrPseudonymsHidden
	}
	return args, nil
}

// ArgsVisible is Args for reports: a role that may not resolve write-time
// pseudonyms gets the principal's own id only, with resolved false, so
// that the report can say what it leaves out. It asks for the privilege
// first rather than failing the call, so a transaction it runs in stays
// usable.
func ArgsVisible(ctx context.Context, q Querier, s Subject) (args []any, resolved bool, err error) {
	ids := []string{}
	resolved = true
	if s.PrincipalID != "" {
		if err := q.QueryRow(ctx, queryPseudonymsResolvable).Scan(&resolved); err != nil {
			return nil, false, fmt.Errorf("subject: %w", err)
		}
		if resolved {
			if err := q.QueryRow(ctx, queryPrincipalIDs, s.PrincipalID).Scan(&ids); err != nil {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "42501" {
					return nil, false, ErrPseudonymsHidden
				}
				return nil, false, fmt.Errorf("subject: %w", err)
			}
		} else {
			ids = []string{s.PrincipalID}
		}
	}
	return []any{ids, nullable(s.ResourceType), nullable(s.ResourceID)}, resolved, nil
}

// nullable is nil for "": "target_resource_type = NULL" matches nothing,
// where comparing with an empty string would match rows that recorded an
// empty type.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Holds describes the active legal holds that cover the subject of args
// (Where's arguments) as "id (scope)"; empty when none.
func Holds(ctx context.Context, q Querier, args []any) ([]string, error) {
	rows, err := q.Query(ctx, heldBySQL, args...)
	if err != nil {
		return nil, fmt.Errorf("legal holds: %w", err)
	}
	var (
		out   []string
		id    int64
		scope string
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &scope}, func() error {
		out = append(out, fmt.Sprintf("%d (%s)", id, scope))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("legal holds: %w", err)
	}
	return out, nil
}

// Token is the stable token that replaces the subject's ids on erasure:
// 'erased_' and 32 hex digits of HMAC-SHA-256 under a key derived from the
// seal key, so the same subject gets the same token (their events still
// group together) and nobody without the key can test a guess.
func (s Subject) Token(sealKey []byte) string {
	k := hmac.New(sha256.New, sealKey)
	k.Write([]byte("auditdb/erasure-token-key/v1"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte(s.PrincipalID + "\x00" + s.ResourceType + "\x00" + s.ResourceID))
	return TokenPrefix + hex.EncodeToString(m.Sum(nil)[:16])
}
