package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/harness"
)

// An archive manifest covers removed rows only when its seal verifies.
func TestArchiveManifestSeal(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	insertN(t, db.Pool, 100) // one statement, one chain
	var chain int16
	var endHash string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT chain_id, hash FROM audit.audit_log WHERE chain_seq = 50`).Scan(&chain, &endHash))
	_, err := db.Pool.Exec(ctx, `BEGIN; SET LOCAL auditdb.maintenance = 'retention';
		DELETE FROM audit.audit_log WHERE chain_seq <= 50; COMMIT`)
	require.NoError(t, err)

	k, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	keys, err := integrity.ParseSealKeys(k, "")
	require.NoError(t, err)
	digest := "ab" + endHash[2:]
	good := integrity.ManifestMAC(keys.Ring["k1"], chain, 1, 50, endHash, 50, digest)
	insertManifest := func(mac string) {
		_, err := db.Pool.Exec(ctx, `DELETE FROM audit.archive_manifests`)
		require.NoError(t, err)
		_, err = db.Pool.Exec(ctx, `INSERT INTO audit.archive_manifests (chain_id, first_seq, last_seq, end_hash, row_count, archive_uri, archive_sha256, key_id, mac)
			VALUES ($1, 1, 50, $2, 50, 'file:///archive/x.jsonl.gz', $3, 'k1', $4)`, chain, endHash, digest, mac)
		require.NoError(t, err)
	}

	insertManifest(good)
	rep := verify(t, db.Pool, verifier.Options{Keys: keys.Ring, NoRecord: true})
	require.True(t, rep.Intact(), "%+v", rep.Findings)

	insertManifest(integrity.ManifestMAC([]byte("not the key, not the key, not it"), chain, 1, 50, endHash, 50, digest))
	rep = verify(t, db.Pool, verifier.Options{Keys: keys.Ring, NoRecord: true})
	require.ElementsMatch(t, []integrity.Kind{integrity.CheckpointForged, integrity.ChainGap}, []integrity.Kind{rep.Findings[0].Kind, rep.Findings[1].Kind})
	require.Len(t, rep.Findings, 2)

	// without keys the seal cannot be checked and the manifest is trusted
	rep = verify(t, db.Pool, verifier.Options{NoRecord: true})
	require.True(t, rep.Intact())
}

// A chain archived to its end, with checkpoints inside and at the end of
// the archived range, verifies: coverage reaches past the last row.
func TestChainArchivedToItsEnd(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	insertN(t, db.Pool, 100)
	k, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	keys, err := integrity.ParseSealKeys(k, "")
	require.NoError(t, err)
	var chain int16
	var mid, end string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT chain_id, (SELECT hash FROM audit.audit_log WHERE chain_seq = 50), hash
		FROM audit.audit_log WHERE chain_seq = 100`).Scan(&chain, &mid, &end))
	for seq, h := range map[int64]string{50: mid, 100: end} {
		at := time.Now().UTC().Truncate(time.Microsecond)
		_, err := db.Pool.Exec(ctx, `INSERT INTO audit.integrity_checkpoints (chain_id, chain_seq, hash, sealed_at, key_id, mac)
			VALUES ($1, $2, $3, $4, 'k1', $5)`, chain, seq, h, at, integrity.CheckpointMAC(keys.Ring["k1"], chain, seq, h, at.UnixMicro()))
		require.NoError(t, err)
	}
	digest := strings.Repeat("cd", 32)
	_, err = db.Pool.Exec(ctx, `INSERT INTO audit.archive_manifests (chain_id, first_seq, last_seq, end_hash, row_count, archive_uri, archive_sha256, key_id, mac)
		VALUES ($1, 1, 100, $2, 100, 'file:///archive/y.jsonl.gz', $3, 'k1', $4)`,
		chain, end, digest, integrity.ManifestMAC(keys.Ring["k1"], chain, 1, 100, end, 100, digest))
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `BEGIN; SET LOCAL auditdb.maintenance = 'retention'; DELETE FROM audit.audit_log; COMMIT`)
	require.NoError(t, err)

	rep := verify(t, db.Pool, verifier.Options{Keys: keys.Ring, NoRecord: true})
	require.True(t, rep.Intact(), "%+v", rep.Findings)
}
