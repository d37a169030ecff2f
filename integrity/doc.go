// Package integrity implements INTEGRITY.md version 1 in Go, with no
// database: everything a third party needs to check auditdb's evidence.
//
//   - The encoding J, the pii commitment, the row hash and the chain hash
//     (Encoder, Genesis, ChainHash), byte-identical to the SQL functions in
//     sql/functions (testdata/vectors.json proves it).
//   - The sealed records' MACs: checkpoints (CheckpointMAC,
//     Checkpoint.CheckSeal), archive manifests (ManifestMAC,
//     ArchiveManifest.SealVerifies) and redactions (RedactionMAC,
//     Redaction.SealVerifies). Each check exists once, here.
//   - Seal keys: parsing AUDIT_SEAL_KEYS lists and files, generating keys.
//   - The archive file format: ArchiveWriter, VerifyArchive and
//     CompareManifests.
//   - ChainVerifier, which checks one chain's rows from any source (a
//     database, an archive, a test) against its checkpoints, manifests and
//     redactions, and the Report and Finding types verification returns.
//
// It imports no database driver (a test checks it); the database side of
// verification (loading chains, recording runs) is internal/verifier.
package integrity
