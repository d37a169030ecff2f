package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/anchor"
	"github.com/auditdb/auditdb/integrity"
)

// seal writes a checkpoint for each chain's head, as the worker's seal job
// does, and returns the keyring that verifies it.
func seal(t *testing.T, c *Client) map[string][]byte {
	t.Helper()
	key := []byte("proof-test-key-0123456789abcdef!")
	ctx := context.Background()
	rows, err := c.pool.Query(ctx, `SELECT chain_id, head_seq, encode(head_hash, 'hex'), date_trunc('milliseconds', now())
		FROM audit.chain_heads WHERE head_seq > 0`)
	require.NoError(t, err)
	type head struct {
		chain int16
		seq   int64
		hash  string
		at    time.Time
	}
	var heads []head
	for rows.Next() {
		var h head
		require.NoError(t, rows.Scan(&h.chain, &h.seq, &h.hash, &h.at))
		heads = append(heads, h)
	}
	require.NoError(t, rows.Err())
	for _, h := range heads {
		_, err := c.pool.Exec(ctx, `INSERT INTO audit.integrity_checkpoints (chain_id, chain_seq, hash, sealed_at, key_id, mac)
			VALUES ($1, $2, $3, $4, 'k1', $5)`, h.chain, h.seq, h.hash, h.at, integrity.CheckpointMAC(key, h.chain, h.seq, h.hash, h.at.UnixMicro()))
		require.NoError(t, err)
	}
	return map[string][]byte{"k1": key}
}

func TestInclusionProof(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, Config{})
	ctx := context.Background()
	events := make([]Event, 300)
	for i := range events {
		events[i] = validEvent(i)
	}
	// one transaction, one chain: 300 rows, so the proof of the first spans them all
	_, err := c.InsertBatch(ctx, events)
	require.NoError(t, err)
	first, err := c.Search(ctx, Query{Limit: 1000})
	require.NoError(t, err)
	oldest := first.Events[len(first.Events)-1]

	t.Run("unsealed proofs end at the head", func(t *testing.T) {
		p, err := c.InclusionProof(ctx, oldest.ID)
		require.NoError(t, err)
		res, err := VerifyInclusionProof(p, nil)
		require.NoError(t, err)
		require.False(t, res.Sealed)
		require.True(t, res.PIIChecked)
	})

	keys := seal(t, c)
	// rows after the seal are not covered by it
	r, err := c.Insert(ctx, validEvent(1000))
	require.NoError(t, err)

	p, err := c.InclusionProof(ctx, oldest.ID)
	require.NoError(t, err)
	require.NotNil(t, p.Checkpoint)
	require.Len(t, p.Following, int(p.Checkpoint.ChainSeq-oldest.ChainSeq))
	// a proof survives JSON, which is how it is handed over
	b, err := json.Marshal(p)
	require.NoError(t, err)
	var back InclusionProof
	require.NoError(t, json.Unmarshal(b, &back))
	res, err := VerifyInclusionProof(&back, keys)
	require.NoError(t, err)
	require.Equal(t, ProofResult{Sealed: true, MACChecked: true, PIIChecked: true}, res)

	late, err := c.InclusionProof(ctx, r.ID)
	require.NoError(t, err)
	res, err = VerifyInclusionProof(late, keys)
	require.NoError(t, err)
	require.False(t, res.Sealed, "the event after the seal is proven to the head only")

	for _, tc := range []struct {
		name   string
		change func(p *InclusionProof)
		want   string
	}{
		{"core field", func(p *InclusionProof) { p.Row.Action = "fhir.patient.delete" }, "recomputed hash differs"},
		{"pii field", func(p *InclusionProof) { s := "someone-else"; p.Row.PrincipalID = &s }, "do not match pii_commitment"},
		{"following hash", func(p *InclusionProof) { p.Following[3] = p.Following[4] }, "does not reach the hash"},
		{"dropped hash", func(p *InclusionProof) { p.Following = p.Following[1:] }, "following row hashes"},
		{"prev hash", func(p *InclusionProof) { p.PrevHash = p.HeadHash }, ""},
		{"checkpoint mac", func(p *InclusionProof) { p.Checkpoint.SealedAt = p.Checkpoint.SealedAt.Add(time.Second) }, "MAC does not verify"},
		{"unknown key", func(p *InclusionProof) { p.Checkpoint.KeyID = "k9" }, "not in the keyring"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q InclusionProof
			require.NoError(t, json.Unmarshal(b, &q))
			tc.change(&q)
			_, err := VerifyInclusionProof(&q, keys)
			require.ErrorIs(t, err, ErrProofInvalid)
			require.ErrorContains(t, err, tc.want)
		})
	}

	t.Run("erased rows still prove, without their PII", func(t *testing.T) {
		_, err := c.pool.Exec(ctx, `BEGIN; SET LOCAL auditdb.maintenance = 'erasure';
			UPDATE audit.audit_log SET pii_salt = NULL, principal_id = 'erased' WHERE id = `+strconv.FormatInt(oldest.ID, 10)+`; COMMIT`)
		require.NoError(t, err)
		p, err := c.InclusionProof(ctx, oldest.ID)
		require.NoError(t, err)
		res, err := VerifyInclusionProof(p, keys)
		require.NoError(t, err)
		require.Equal(t, ProofResult{Sealed: true, MACChecked: true}, res)
	})

	_, err = c.InclusionProof(ctx, 1<<40)
	require.ErrorIs(t, err, ErrNotFound)
}

// A proof can end at a signed anchor: then the anchor's public keys alone
// check it, no database and no seal key.
func TestInclusionProofEndsAtAnAnchor(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, Config{})
	ctx := context.Background()
	events := make([]Event, 40)
	for i := range events {
		events[i] = validEvent(i)
	}
	_, err := c.InsertBatch(ctx, events)
	require.NoError(t, err)
	page, err := c.Search(ctx, Query{Limit: 100})
	require.NoError(t, err)
	oldest := page.Events[len(page.Events)-1]

	sink, err := anchor.OpenSink(ctx, t.TempDir())
	require.NoError(t, err)
	_, err = c.InclusionProof(ctx, oldest.ID, WithAnchors(sink))
	require.ErrorContains(t, err, "no anchor bundle")

	// anchor every head, as the worker does
	var logID string
	require.NoError(t, c.pool.QueryRow(ctx, `SELECT value FROM audit.settings WHERE key = 'log_id'`).Scan(&logID))
	rows, err := c.pool.Query(ctx, `SELECT chain_id, head_seq, encode(head_hash, 'hex') FROM audit.chain_heads ORDER BY chain_id`)
	require.NoError(t, err)
	var heads []integrity.AnchorHead
	for rows.Next() {
		var h integrity.AnchorHead
		require.NoError(t, rows.Scan(&h.Chain, &h.Seq, &h.Hash))
		if h.Seq == 0 {
			g := integrity.Genesis(h.Chain)
			h.Hash = hex.EncodeToString(g[:])
		}
		heads = append(heads, h)
	}
	require.NoError(t, rows.Err())
	line, err := integrity.GenerateAnchorKey("a1")
	require.NoError(t, err)
	signer, err := integrity.ParseAnchorPrivateKey(line, "test")
	require.NoError(t, err)
	b := integrity.NewBundle(logID, 1, integrity.ZeroHash, time.Now().UnixMicro(), heads)
	b.Signatures = append(b.Signatures, signer.Sign(b.Message()))
	_, _, err = anchor.Publish(ctx, sink, b, time.Time{})
	require.NoError(t, err)
	keys, err := integrity.ParseAnchorKeys(signer.PublicLine(), "test")
	require.NoError(t, err)

	p, err := c.InclusionProof(ctx, oldest.ID, WithAnchors(sink))
	require.NoError(t, err)
	require.NotNil(t, p.Anchor)
	raw, err := json.Marshal(p)
	require.NoError(t, err)
	var back InclusionProof
	require.NoError(t, json.Unmarshal(raw, &back))
	res, err := VerifyAnchoredProof(&back, keys, 1)
	require.NoError(t, err)
	require.True(t, res.Anchored)
	require.EqualValues(t, 1, res.AnchorBundle)
	require.True(t, res.PIIChecked)

	for name, mutate := range map[string]func(q *InclusionProof){
		"other key":      func(q *InclusionProof) { q.Anchor.Signatures[0].KeyID = "nobody" },
		"moved head":     func(q *InclusionProof) { q.Anchor.TimeUS++ },
		"path":           func(q *InclusionProof) { q.Anchor.Path[0] = q.Anchor.Root },
		"row":            func(q *InclusionProof) { q.Row.Action = "tampered" },
		"no anchor":      func(q *InclusionProof) { q.Anchor = nil },
		"two signatures": nil,
	} {
		var q InclusionProof
		require.NoError(t, json.Unmarshal(raw, &q))
		min := 1
		if mutate != nil {
			mutate(&q)
		} else {
			min = 2
		}
		_, err := VerifyAnchoredProof(&q, keys, min)
		require.ErrorIs(t, err, ErrProofInvalid, name)
	}
}
