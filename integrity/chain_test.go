package integrity

import (
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// synthChain builds n valid rows of chain 3 and their stored hashes, as the
// trigger would.
func synthChain(n int) ([]Row, [][]byte, [][32]byte) {
	var enc Encoder
	rows := make([]Row, n)
	stored := make([][]byte, n)
	hashes := make([][32]byte, n)
	prev := Genesis(3)
	for i := range rows {
		r := Row{ID: int64(100 + i), ChainID: 3, ChainSeq: int64(i + 1), TimestampUS: 1700000000000000 + int64(i),
			RecordedAtUS: 1700000000000001 + int64(i), Action: []byte("a"), Status: []byte("success"),
			DataClassification: []byte("PHI"), RetentionPolicy: []byte("phi_extended"),
			PrincipalID: []byte(fmt.Sprintf("user-%d", i)), Details: []byte(`{"i": 1}`),
			PIISalt: []byte("0123456789abcdef")}
		c := enc.PIICommitment(&r, r.PIISalt)
		r.PIICommitment = c[:]
		h := ChainHash(prev, enc.RowHash(&r, c[:]))
		rows[i], hashes[i], prev = r, h, h
		stored[i] = []byte(hex.EncodeToString(h[:]))
	}
	return rows, stored, hashes
}

func kinds(fs []Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s@%d", f.Kind, f.ChainSeq))
	}
	return out
}

// The verifier's walk, without a database: archive manifests, checkpoints
// with and without keys, redactions. (The tables exist; the worker that
// fills them comes later, so these paths are tested here.)
func TestChainVerifier(t *testing.T) {
	t.Parallel()
	key := []byte("k1-secret-key-material-32-bytes!")
	sealed := time.UnixMicro(1700000001000000)
	rows, stored, hashes := synthChain(10)
	hexOf := func(i int) string { return hex.EncodeToString(hashes[i][:]) }
	cp := func(seq int, h string) Checkpoint {
		return Checkpoint{ChainID: 3, Seq: int64(seq), Hash: h, SealedAt: sealed, KeyID: "k1",
			MAC: CheckpointMAC(key, 3, int64(seq), h, sealed.UnixMicro())}
	}
	man := func(first, last int64, endHash string) ArchiveManifest {
		m := ArchiveManifest{ChainID: 3, FirstSeq: first, LastSeq: last, EndHash: endHash, RowCount: last - first + 1}
		m.Seal("k1", key) // sealed, so that it counts when the case checks MACs
		return m
	}

	for _, tc := range []struct {
		name     string
		from     int // first row present (0-based); rows before it were removed
		skip     map[int]bool
		cps      []Checkpoint
		mans     []ArchiveManifest
		keys     Keyring
		redacted map[int64][]Redaction
		mutate   func(r []Row)
		head     int64
		want     []string
	}{
		{name: "intact", head: 10, want: []string{}},
		{name: "intact with a checkpoint, MAC checked", cps: []Checkpoint{cp(4, hexOf(3))}, keys: Keyring{"k1": key}, head: 10, want: []string{}},
		{name: "archived head covered by a manifest", from: 5, mans: []ArchiveManifest{man(1, 5, hexOf(4))}, head: 10, want: []string{}},
		{name: "archived head without a manifest", from: 5, head: 10, want: []string{"chain_gap@1"}},
		{name: "manifest with a wrong end hash", from: 5, mans: []ArchiveManifest{man(1, 5, hexOf(2))}, head: 10, want: []string{"row_modified@6"}},
		{name: "middle gap covered by a manifest", skip: map[int]bool{3: true, 4: true}, mans: []ArchiveManifest{man(4, 5, hexOf(4))}, head: 10, want: []string{}},
		{name: "checkpoint inside an archived range", from: 5, mans: []ArchiveManifest{man(1, 5, hexOf(4))}, cps: []Checkpoint{cp(5, hexOf(4))}, keys: Keyring{"k1": key}, head: 10, want: []string{}},
		{name: "manifest with a forged seal covers nothing", from: 5, mans: []ArchiveManifest{{ChainID: 3, FirstSeq: 1, LastSeq: 5, EndHash: hexOf(4), RowCount: 5, KeyID: "k1", MAC: "00"}}, keys: Keyring{"k1": key}, head: 10, want: []string{"checkpoint_forged@1", "chain_gap@1"}},
		{name: "checkpoint mismatch", cps: []Checkpoint{cp(6, hexOf(2))}, head: 10, want: []string{"checkpoint_mismatch@6"}},
		{name: "forged MAC", cps: []Checkpoint{{ChainID: 3, Seq: 6, Hash: hexOf(5), SealedAt: sealed, KeyID: "k1", MAC: "00"}}, keys: Keyring{"k1": key}, head: 10, want: []string{"checkpoint_forged@6"}},
		{name: "unknown key id", cps: []Checkpoint{{ChainID: 3, Seq: 6, Hash: hexOf(5), SealedAt: sealed, KeyID: "k9", MAC: "00"}}, keys: Keyring{"k1": key}, head: 10, want: []string{"checkpoint_forged@6"}},
		{name: "MACs not checked without keys", cps: []Checkpoint{{ChainID: 3, Seq: 6, Hash: hexOf(5), SealedAt: sealed, KeyID: "k1", MAC: "00"}}, head: 10, want: []string{}},
		{name: "tail truncated below a checkpoint", skip: map[int]bool{8: true, 9: true}, cps: []Checkpoint{cp(10, hexOf(9))}, head: 8, want: []string{"tail_truncated@10"}},
		{name: "tail truncated below the head", skip: map[int]bool{9: true}, head: 10, want: []string{"tail_truncated@10"}},
		{name: "redaction recorded", redacted: map[int64][]Redaction{102: {{Seq: 3}}}, mutate: func(r []Row) { r[2].PIISalt, r[2].PrincipalID = nil, nil }, head: 10, want: []string{}},
		{name: "redaction not recorded", mutate: func(r []Row) { r[2].PIISalt, r[2].PrincipalID = nil, nil }, head: 10, want: []string{"unauthorized_redaction@3"}},
		{name: "pii changed", mutate: func(r []Row) { r[2].PrincipalID = []byte("mallory") }, head: 10, want: []string{"row_modified@3"}},
		{name: "empty string is not null", mutate: func(r []Row) { r[4].PrincipalType = []byte{} }, head: 10, want: []string{"row_modified@5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := append([]Row(nil), rows...)
			if tc.mutate != nil {
				tc.mutate(rs)
			}
			v := NewChainVerifier(ChainInput{ChainID: 3, Checkpoints: tc.cps, Manifests: tc.mans, Keys: tc.keys, Redactions: tc.redacted})
			for i := tc.from; i < len(rs); i++ {
				if !tc.skip[i] {
					v.Row(&rs[i], stored[i])
				}
			}
			v.Finish(tc.head)
			require.Equal(t, tc.want, kinds(v.Findings()))
		})
	}
}

func BenchmarkChainVerifierRow(b *testing.B) {
	rows, stored, _ := synthChain(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		v := NewChainVerifier(ChainInput{ChainID: 3})
		for j := range rows {
			v.Row(&rows[j], stored[j])
			i++
		}
	}
}
