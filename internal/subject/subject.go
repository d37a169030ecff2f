// Package subject names a GDPR data subject the way audit rows record
// people: as the principal who acted, as the resource acted on (type and
// id), or both. Erasure and export select rows with the same condition, so
// both reach exactly the same rows: never a row of another type that shares
// an id (Patient/42 is not Invoice/42).
package subject

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
// pseudonyms; empty when none), $2 the resource type and $3 the resource id.
// Both halves use an index: (principal_id, timestamp) and
// (target_resource_type, target_resource_id, timestamp).
const Where = `(l.principal_id = ANY($1) OR (l.target_resource_type = $2 AND l.target_resource_id = $3))`

// HeldBySQL lists the ids of active legal holds that cover a subject or any
// of their events, given subject.Where's arguments: a hold on the subject
// itself (as principal or resource id), on one of their resources, or on an
// organization of their events.
const HeldBySQL = `SELECT h.id, h.scope FROM audit.legal_holds h
	WHERE h.released_at IS NULL AND (
		(h.scope = 'subject' AND (h.value = ANY($1) OR h.value = $3))
		OR EXISTS (SELECT 1 FROM audit.audit_log l WHERE ` + Where + `
			AND ((h.scope = 'resource' AND l.target_resource_type = h.target_resource_type AND l.target_resource_id = h.value)
				OR (h.scope = 'organization' AND l.organization_id = h.value))))
	ORDER BY h.id`

// PrincipalIDsSQL returns $1's principal ids: itself and its write-time
// pseudonyms (empty for an empty id). It runs as its owner: only the worker
// and the privacy officer may call it.
const PrincipalIDsSQL = `SELECT audit.subject_principal_ids($1)`

// Token is the stable token that replaces the subject's ids on erasure:
// 'erased_' and 32 hex digits of HMAC-SHA-256 under a key derived from the
// seal key, so the same subject gets the same token (their events still
// group together) and nobody without the key can test a guess.
func (s Subject) Token(sealKey []byte) string {
	k := hmac.New(sha256.New, sealKey)
	k.Write([]byte("auditdb/erasure-token-key/v1"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte(s.PrincipalID + "\x00" + s.ResourceType + "\x00" + s.ResourceID))
	return "erased_" + hex.EncodeToString(m.Sum(nil)[:16])
}
