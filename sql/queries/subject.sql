-- Queries of internal/subject: resolving a data subject's ids.

-- name: SubjectPseudonymsResolvable
-- Whether the current role may resolve write-time pseudonyms (run
-- audit.subject_principal_ids, which reads audit.pseudonyms): asked first so
-- that a report's read-only transaction is not aborted by a refused call.
SELECT has_function_privilege('audit.subject_principal_ids(text)', 'EXECUTE');

-- name: SubjectPrincipalIDs
-- A principal's id with its write-time pseudonyms ($1 the principal id).
SELECT audit.subject_principal_ids($1);
