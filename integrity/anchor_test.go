package integrity

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// anchorVectors is testdata/anchor_vectors.json, made by an independent
// implementation (testdata/anchor_vectors.mjs, Node's crypto).
type anchorVectors struct {
	Leaves []struct {
		Chain int16  `json:"chain"`
		Seq   int64  `json:"seq"`
		Hash  string `json:"hash"`
		Leaf  string `json:"leaf"`
	} `json:"leaves"`
	Roots []struct {
		Chains int          `json:"chains"`
		Heads  []AnchorHead `json:"heads"`
		Leaves []string     `json:"leaves"`
		Root   string       `json:"root"`
	} `json:"roots"`
	Keys []struct {
		ID      string `json:"id"`
		SeedHex string `json:"seed_hex"`
		Private string `json:"private"`
		Public  string `json:"public"`
	} `json:"keys"`
	Bundles []struct {
		Message       string `json:"message"`
		MessageSHA256 string `json:"message_sha256"`
		Key           string `json:"key"`
		Signature     string `json:"signature"`
		Name          string `json:"name"`
		File          string `json:"file"`
	} `json:"bundles"`
	Cosignatures []struct {
		Name string `json:"name"`
		File string `json:"file"`
	} `json:"cosignatures"`
}

func loadAnchorVectors(t testing.TB) anchorVectors {
	t.Helper()
	raw, err := os.ReadFile("testdata/anchor_vectors.json")
	require.NoError(t, err)
	var v anchorVectors
	require.NoError(t, json.Unmarshal(raw, &v))
	require.NotEmpty(t, v.Leaves)
	require.Len(t, v.Roots, 6)
	require.Len(t, v.Keys, 2)
	require.Len(t, v.Bundles, 2)
	require.Len(t, v.Cosignatures, 1)
	return v
}

const vectorLog = "5f0c6b1e-8d2a-4c3b-9e7f-1a2b3c4d5e6f"

func TestAnchorVectors(t *testing.T) {
	t.Parallel()
	v := loadAnchorVectors(t)
	for _, l := range v.Leaves {
		got := AnchorLeaf(l.Chain, l.Seq, l.Hash)
		require.Equal(t, l.Leaf, hex.EncodeToString(got[:]), "leaf chain %d seq %d", l.Chain, l.Seq)
		if l.Seq == 0 {
			g := Genesis(l.Chain)
			require.Equal(t, hex.EncodeToString(g[:]), l.Hash, "an empty chain is anchored at its genesis hash")
		}
	}
	for _, r := range v.Roots {
		require.Len(t, r.Heads, r.Chains)
		leaves := make([][32]byte, len(r.Heads))
		for i, h := range r.Heads {
			leaves[i] = h.Leaf()
			require.Equal(t, r.Leaves[i], hex.EncodeToString(leaves[i][:]))
		}
		root := MerkleRoot(leaves)
		require.Equal(t, r.Root, hex.EncodeToString(root[:]), "K = %d", r.Chains)
		for i := range leaves {
			path := MerklePath(leaves, i)
			require.True(t, VerifyMerklePath(leaves[i], i, len(leaves), path, root), "K = %d leaf %d", r.Chains, i)
			if len(path) > 0 {
				bad := append([][32]byte(nil), path...)
				bad[0][0] ^= 1
				require.False(t, VerifyMerklePath(leaves[i], i, len(leaves), bad, root))
			}
			require.False(t, VerifyMerklePath(leaves[i], (i+1)%len(leaves)+len(leaves)*boolInt(len(leaves) == 1), len(leaves), path, root))
		}
	}
	signers := map[string]*AnchorSigner{}
	for _, k := range v.Keys {
		s, err := ParseAnchorPrivateKey(k.Private, "vector")
		require.NoError(t, err)
		require.Equal(t, k.Public, s.PublicLine(), "public key of %s", k.ID)
		signers[k.ID] = s
	}
	pub, err := ParseAnchorKeys(v.Keys[0].Public+","+v.Keys[1].Public, "vector")
	require.NoError(t, err)

	var objs []BundleObject
	for i, bv := range v.Bundles {
		b, err := ParseBundle([]byte(bv.File))
		require.NoError(t, err)
		require.Equal(t, bv.Message, string(b.Message()))
		require.Equal(t, bv.MessageSHA256, b.MessageSHA256())
		require.Equal(t, bv.Name, BundleKey(b.Log, b.Bundle))
		n, ok := ParseBundleKey(vectorLog, bv.Name)
		require.True(t, ok)
		require.Equal(t, b.Bundle, n)
		// rebuilt from the heads and signed here, byte for byte
		fresh := NewBundle(b.Log, b.Bundle, b.Prev, b.TimeUS, b.Heads)
		require.Equal(t, b.Root, fresh.Root)
		fresh.Signatures = append(fresh.Signatures, signers["anchor-1"].Sign(fresh.Message()))
		require.Equal(t, bv.Signature, fresh.Signatures[0].Sig, "Ed25519 is deterministic")
		require.Equal(t, bv.File, string(MarshalBundle(fresh)))
		if i == 0 {
			require.Equal(t, ZeroHash, b.Prev)
			for _, h := range b.Heads {
				require.Zero(t, h.Seq, "bundle 1 is an empty log")
			}
		} else {
			require.Equal(t, v.Bundles[i-1].MessageSHA256, b.Prev)
		}
		objs = append(objs, BundleObject{Name: bv.Name, Number: n, Data: []byte(bv.File)})
	}
	c := v.Cosignatures[0]
	n, keyID, ok := ParseCosigKey(vectorLog, c.Name)
	require.True(t, ok)
	require.Equal(t, int64(2), n)
	require.Equal(t, "witness.a", keyID)
	cs, err := ParseCosignature([]byte(c.File))
	require.NoError(t, err)
	require.Equal(t, c.File, string(MarshalCosignature(cs)))
	require.Equal(t, cs.Sig, signers["witness.a"].Sign([]byte(v.Bundles[1].Message)).Sig)
	_, isBundle := ParseBundleKey(vectorLog, c.Name)
	require.False(t, isBundle, "a cosignature is not a bundle")
	objs[1].Cosigs = []CosigObject{{Name: c.Name, KeyID: keyID, Data: []byte(c.File)}}

	rep := CheckBundles(objs, AnchorOptions{LogID: vectorLog, Chains: 16, Keys: pub})
	require.Empty(t, rep.Findings)
	require.Equal(t, 2, rep.Trusted)
	require.Equal(t, 1, rep.Cosignatures)
	// both signatures count: bundle 2 has two, bundle 1 one
	rep = CheckBundles(objs, AnchorOptions{LogID: vectorLog, Chains: 16, Keys: pub, MinSignatures: 2})
	require.Equal(t, []string{"anchor_forged@bundle1"}, bundleKinds(rep.Findings))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func bundleKinds(fs []Finding) []string {
	out := []string{}
	for _, f := range fs {
		if f.ChainSeq != 0 {
			out = append(out, fmt.Sprintf("%s@bundle%d/chain%d/seq%d", f.Kind, f.Bundle, f.ChainID, f.ChainSeq))
		} else {
			out = append(out, fmt.Sprintf("%s@bundle%d", f.Kind, f.Bundle))
		}
	}
	return out
}

// testSink builds n signed bundles of a 4-chain log whose chain 1 grows.
func testSink(t *testing.T, n int) ([]BundleObject, AnchorKeys, *AnchorSigner) {
	t.Helper()
	s, err := ParseAnchorPrivateKey("a1:"+strings.Repeat("A", 43)+"=", "test")
	require.NoError(t, err)
	keys, err := ParseAnchorKeys(s.PublicLine(), "test")
	require.NoError(t, err)
	prev := ZeroHash
	var objs []BundleObject
	for i := 1; i <= n; i++ {
		heads := make([]AnchorHead, 4)
		for c := range heads {
			g := Genesis(int16(c))
			heads[c] = AnchorHead{Chain: int16(c), Hash: hex.EncodeToString(g[:])}
		}
		heads[1] = AnchorHead{Chain: 1, Seq: int64(10 * i), Hash: fmt.Sprintf("%064x", i)}
		b := NewBundle(vectorLog, int64(i), prev, int64(1000*i), heads)
		b.Signatures = append(b.Signatures, s.Sign(b.Message()))
		prev = b.MessageSHA256()
		objs = append(objs, BundleObject{Name: BundleKey(vectorLog, b.Bundle), Number: b.Bundle, Data: MarshalBundle(b)})
	}
	return objs, keys, s
}

func TestCheckBundlesFindings(t *testing.T) {
	t.Parallel()
	edit := func(data []byte, from, to string) []byte {
		require.Contains(t, string(data), from)
		return []byte(strings.Replace(string(data), from, to, 1))
	}
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, objs []BundleObject, s *AnchorSigner) []BundleObject
		opts   AnchorOptions
		want   []string
		detail string // a finding's detail must contain it
	}{
		{name: "intact", want: []string{}},
		{name: "deleted bundle", mutate: func(_ *testing.T, o []BundleObject, _ *AnchorSigner) []BundleObject {
			return append(o[:2:2], o[3:]...)
		}, want: []string{"anchor_gap@bundle4"}, detail: "bundle 3 is missing"},
		{name: "deleted newest bundle, database says it was written", mutate: func(_ *testing.T, o []BundleObject, _ *AnchorSigner) []BundleObject {
			return o[:4]
		}, opts: AnchorOptions{ExpectedLast: 5}, want: []string{"anchor_gap@bundle5"}},
		{name: "edited heads", mutate: func(t *testing.T, o []BundleObject, _ *AnchorSigner) []BundleObject {
			o[2].Data = edit(o[2].Data, `"seq": 30`, `"seq": 29`)
			return o
		}, want: []string{"anchor_forged@bundle3"}, detail: "heads do not give root"},
		{name: "edited root and heads", mutate: func(t *testing.T, o []BundleObject, _ *AnchorSigner) []BundleObject {
			b, err := ParseBundle(o[2].Data)
			require.NoError(t, err)
			sigs := b.Signatures
			b = NewBundle(b.Log, b.Bundle, b.Prev, b.TimeUS, append([]AnchorHead(nil), b.Heads...))
			b.Heads[1].Seq = 29
			r := b.ComputeRoot()
			b.Root, b.Signatures = hex.EncodeToString(r[:]), sigs
			o[2].Data = MarshalBundle(b)
			return o
		}, want: []string{"anchor_forged@bundle3", "anchor_gap@bundle4"}, detail: "does not verify"},
		{name: "not JSON", mutate: func(_ *testing.T, o []BundleObject, _ *AnchorSigner) []BundleObject {
			o[1].Data = []byte("\x00garbage")
			return o
		}, want: []string{"anchor_forged@bundle2"}, detail: "00000000000000000002.json: not JSON"},
		{name: "empty file", mutate: func(_ *testing.T, o []BundleObject, _ *AnchorSigner) []BundleObject {
			o[1].Data = nil
			return o
		}, want: []string{"anchor_forged@bundle2"}, detail: "not JSON"},
		{name: "unknown field", mutate: func(t *testing.T, o []BundleObject, _ *AnchorSigner) []BundleObject {
			o[1].Data = edit(o[1].Data, `{"format"`, `{"extra": 1, "format"`)
			return o
		}, want: []string{"anchor_forged@bundle2"}, detail: `unknown field "extra"`},
		{name: "wrong version", mutate: func(t *testing.T, o []BundleObject, _ *AnchorSigner) []BundleObject {
			o[1].Data = edit(o[1].Data, `"version": 1`, `"version": 2`)
			return o
		}, want: []string{"anchor_forged@bundle2"}, detail: "field version"},
		{name: "other log id", mutate: func(t *testing.T, o []BundleObject, s *AnchorSigner) []BundleObject {
			return o
		}, opts: AnchorOptions{LogID: "00000000-0000-4000-8000-000000000000"}, want: []string{
			"anchor_forged@bundle1", "anchor_forged@bundle2", "anchor_forged@bundle3", "anchor_forged@bundle4", "anchor_forged@bundle5"}, detail: "another log id"},
		{name: "signature of the wrong length", mutate: func(t *testing.T, o []BundleObject, _ *AnchorSigner) []BundleObject {
			b, err := ParseBundle(o[1].Data)
			require.NoError(t, err)
			o[1].Data = edit(o[1].Data, b.Signatures[0].Sig, "AAAA")
			return o
		}, want: []string{"anchor_forged@bundle2"}, detail: "signatures[0]: sig must be standard base64 of 64 bytes"},
		{name: "unknown key", opts: AnchorOptions{Keys: AnchorKeys{"other": make([]byte, 32)}}, want: []string{
			"anchor_forged@bundle1", "anchor_forged@bundle2", "anchor_forged@bundle3", "anchor_forged@bundle4", "anchor_forged@bundle5"}, detail: "not among the anchor keys"},
		{name: "broken prev link", mutate: func(t *testing.T, o []BundleObject, s *AnchorSigner) []BundleObject {
			b, err := ParseBundle(o[3].Data)
			require.NoError(t, err)
			b.Prev = strings.Repeat("1", 64)
			b.Signatures = []AnchorSignature{s.Sign(b.Message())}
			o[3].Data = MarshalBundle(b)
			return o
		}, want: []string{"anchor_gap@bundle4", "anchor_gap@bundle5"}},
		{name: "rollback", mutate: func(t *testing.T, o []BundleObject, s *AnchorSigner) []BundleObject {
			b, err := ParseBundle(o[3].Data)
			require.NoError(t, err)
			heads := append([]AnchorHead(nil), b.Heads...)
			heads[1].Seq = 5
			nb := NewBundle(b.Log, b.Bundle, b.Prev, b.TimeUS, heads)
			nb.Signatures = []AnchorSignature{s.Sign(nb.Message())}
			o[3].Data = MarshalBundle(nb)
			return o
		}, want: []string{"anchor_rollback@bundle4/chain1/seq5", "anchor_gap@bundle5"}},
		{name: "wrong chain count", opts: AnchorOptions{Chains: 16}, want: []string{
			"anchor_forged@bundle1", "anchor_forged@bundle2", "anchor_forged@bundle3", "anchor_forged@bundle4", "anchor_forged@bundle5"}, detail: "anchors 4 chains, the log has 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, keys, s := testSink(t, 5)
			if tc.mutate != nil {
				objs = tc.mutate(t, objs, s)
			}
			opts := tc.opts
			if opts.LogID == "" {
				opts.LogID = vectorLog
			}
			if opts.Keys == nil {
				opts.Keys = keys
			}
			rep := CheckBundles(objs, opts)
			require.Equal(t, tc.want, bundleKinds(rep.Findings))
			if tc.detail != "" {
				found := false
				for _, f := range rep.Findings {
					found = found || strings.Contains(f.Detail, tc.detail)
				}
				require.True(t, found, "no finding says %q: %+v", tc.detail, rep.Findings)
			}
		})
	}
}

func TestChainVerifierAnchors(t *testing.T) {
	t.Parallel()
	rows, stored, hashes := synthChain(10)
	hexOf := func(i int) string { return hex.EncodeToString(hashes[i][:]) }
	for _, tc := range []struct {
		name    string
		anchors []AnchoredHead
		from    int // rows before it were archived under a manifest
		upto    int // rows after it are gone (0: all)
		start   int64
		want    []string
		checked int
		inArch  int
	}{
		{name: "intact", anchors: []AnchoredHead{{Seq: 4, Hash: hexOf(3), Bundle: 1}, {Seq: 10, Hash: hexOf(9), Bundle: 2}}, want: []string{}, checked: 2},
		{name: "rewritten", anchors: []AnchoredHead{{Seq: 4, Hash: hexOf(2), Bundle: 1}}, want: []string{"anchor_mismatch@4"}, checked: 1},
		{name: "tail gone", anchors: []AnchoredHead{{Seq: 10, Hash: hexOf(9), Bundle: 2}}, upto: 8, want: []string{"tail_truncated@10"}},
		{name: "anchored in archive", anchors: []AnchoredHead{{Seq: 3, Hash: "x", Bundle: 1}, {Seq: 5, Hash: hexOf(4), Bundle: 1}}, from: 5, want: []string{}, checked: 1, inArch: 1},
		{name: "incremental start", anchors: []AnchoredHead{{Seq: 2, Hash: "not checked", Bundle: 1}, {Seq: 6, Hash: hexOf(5), Bundle: 1}}, start: 6, want: []string{}, checked: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := ChainInput{ChainID: 3, Anchors: tc.anchors}
			if tc.from > 0 {
				in.Manifests = []ArchiveManifest{{ChainID: 3, FirstSeq: 1, LastSeq: int64(tc.from), EndHash: hexOf(tc.from - 1)}}
			}
			first := tc.from
			if tc.start > 0 {
				in.StartSeq, in.StartHash, first = tc.start, hashes[tc.start-1], int(tc.start)
			}
			last := len(rows)
			if tc.upto > 0 {
				last = tc.upto
			}
			v := NewChainVerifier(in)
			for i := first; i < last; i++ {
				v.Row(&rows[i], stored[i])
			}
			v.Finish(int64(last))
			require.Equal(t, tc.want, kinds(v.Findings()))
			checked, inArch := v.AnchorsChecked()
			require.Equal(t, tc.checked, checked)
			require.Equal(t, tc.inArch, inArch)
		})
	}
}

func TestAnchorKeyParsing(t *testing.T) {
	t.Parallel()
	line, err := GenerateAnchorKey("k-1")
	require.NoError(t, err)
	s, err := ParseAnchorPrivateKey(line, "AUDIT_ANCHOR_KEY")
	require.NoError(t, err)
	_, err = ParseAnchorKeys(s.PublicLine(), "AUDIT_ANCHOR_KEYS")
	require.NoError(t, err)
	secret := strings.Repeat("Zm9v", 5)
	for _, bad := range []string{"k1:" + secret, "k1:" + secret + "!", "nocolon", "bad id:" + secret} {
		_, err := ParseAnchorPrivateKey(bad, "AUDIT_ANCHOR_KEY")
		require.Error(t, err)
		require.Contains(t, err.Error(), "AUDIT_ANCHOR_KEY")
		require.NotContains(t, err.Error(), secret, "an error never shows the key")
	}
	_, err = ParseAnchorKeys("k1:"+secret, "AUDIT_ANCHOR_KEYS")
	require.ErrorContains(t, err, "AUDIT_ANCHOR_KEYS: key \"k1\": 15 bytes, an Ed25519 public key is 32")
	_, err = AnchorKeyFromEnv(func(string) string { return "" })
	require.ErrorIs(t, err, ErrNoAnchorKey)
}
