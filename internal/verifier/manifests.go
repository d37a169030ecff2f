package verifier

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditdb/auditdb/integrity"
)

// Querier is what LoadArchiveManifests needs: a pool, a connection or a
// transaction.
type Querier interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}

// LoadArchiveManifests returns the rows of audit.archive_manifests (aliased
// m) that where selects (empty: all), ordered by chain and first seq.
func LoadArchiveManifests(ctx context.Context, q Querier, where string, args ...any) ([]integrity.ArchiveManifest, error) {
	rows, err := q.Query(ctx, `SELECT id, chain_id, first_seq, last_seq, end_hash, row_count, archive_uri,
			archive_sha256, created_at, key_id, mac
		FROM audit.archive_manifests m `+where+` ORDER BY chain_id, first_seq`, args...)
	if err != nil {
		return nil, fmt.Errorf("archive manifests: %w", err)
	}
	mans, err := pgx.CollectRows(rows, pgx.RowToStructByPos[integrity.ArchiveManifest])
	if err != nil {
		return nil, fmt.Errorf("archive manifests: %w", err)
	}
	return mans, nil
}

// manifestsForArchive returns the manifests recorded for an archive digest,
// or for any of the header's chain ranges.
func manifestsForArchive(ctx context.Context, q Querier, digest string, hdr integrity.ArchiveHeader) ([]integrity.ArchiveManifest, error) {
	chains := make([]int16, len(hdr.Ranges))
	firsts := make([]int64, len(hdr.Ranges))
	for i, rg := range hdr.Ranges {
		chains[i], firsts[i] = rg.ChainID, rg.FirstSeq
	}
	return LoadArchiveManifests(ctx, q, `WHERE archive_sha256 = $1
		   OR (chain_id, first_seq) IN (SELECT * FROM unnest($2::smallint[], $3::bigint[]))`, digest, chains, firsts)
}

// CheckArchiveManifests compares a verified archive with the sealed
// manifests of the database: every header range must have a manifest with
// the same range, end hash, row count and the file's digest; with keys, each
// manifest's seal must verify. Findings are added to rep.
func CheckArchiveManifests(ctx context.Context, pool *pgxpool.Pool, rep *integrity.ArchiveReport, keys integrity.Keyring) error {
	mans, err := manifestsForArchive(ctx, pool, rep.SHA256, rep.Header)
	if err != nil {
		return err
	}
	rep.ManifestsChecked = true
	rep.MACsChecked = len(keys) > 0
	rep.Findings = append(rep.Findings, integrity.CompareManifests(rep.SHA256, rep.Header, mans, keys)...)
	if !rep.Intact() {
		rep.Status = "tampered"
	}
	return nil
}
