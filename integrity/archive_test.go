package integrity

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func archiveRowOf(r Row, stored []byte) ArchiveRow {
	s := func(b []byte) *string {
		if b == nil {
			return nil
		}
		v := string(b)
		return &v
	}
	a := ArchiveRow{ID: r.ID, ChainID: r.ChainID, ChainSeq: r.ChainSeq,
		TimestampUS: r.TimestampUS, Timestamp: FormatArchiveTime(time.UnixMicro(r.TimestampUS)),
		RecordedAtUS: r.RecordedAtUS, RecordedAt: FormatArchiveTime(time.UnixMicro(r.RecordedAtUS)),
		Action: string(r.Action), Status: string(r.Status), DataClassification: string(r.DataClassification),
		RetentionPolicy: string(r.RetentionPolicy), PrincipalID: s(r.PrincipalID), Details: s(r.Details),
		PIISalt: s([]byte(hex.EncodeToString(r.PIISalt))), PIICommitment: hex.EncodeToString(r.PIICommitment),
		Hash: string(stored), HashAlgorithm: "SHA-256", HashVersion: 1}
	return a
}

// testArchive writes chain 3's seqs 1..20 as two ranges (1..10, 11..20).
func testArchive(t *testing.T) ([]byte, string, ArchiveHeader) {
	t.Helper()
	rows, stored, hashes := synthChain(20)
	g := Genesis(3)
	hdr := ArchiveHeader{CreatedAt: time.Unix(1700000000, 0).UTC(), Ranges: []ArchiveRange{
		{ChainID: 3, FirstSeq: 1, LastSeq: 10, RowCount: 10, StartHash: hex.EncodeToString(g[:]), EndHash: hex.EncodeToString(hashes[9][:])},
		{ChainID: 3, FirstSeq: 11, LastSeq: 20, RowCount: 10, StartHash: hex.EncodeToString(hashes[9][:]), EndHash: hex.EncodeToString(hashes[19][:])},
	}}
	var buf bytes.Buffer
	aw, err := NewArchiveWriter(&buf, hdr)
	require.NoError(t, err)
	for i := range rows {
		a := archiveRowOf(rows[i], stored[i])
		require.NoError(t, aw.WriteRow(&a))
	}
	digest, err := aw.Close()
	require.NoError(t, err)
	hdr.Format, hdr.Version, hdr.HashVersion = ArchiveFormat, ArchiveVersion, HashVersion
	return buf.Bytes(), digest, hdr
}

func gunzipLines(t *testing.T, b []byte) []string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	text, err := io.ReadAll(zr)
	require.NoError(t, err)
	return strings.SplitAfter(strings.TrimSuffix(string(text), "\n"), "\n")
}

func gzipLines(t *testing.T, lines []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(strings.Join(lines, "")))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func TestVerifyArchiveIntact(t *testing.T) {
	t.Parallel()
	file, digest, hdr := testArchive(t)
	var progressed int64
	rep, err := VerifyArchive(bytes.NewReader(file), func(n int64) { progressed = n })
	require.NoError(t, err)
	require.True(t, rep.Intact(), "%+v", rep.Findings)
	require.Equal(t, "intact", rep.Status)
	require.Equal(t, digest, rep.SHA256, "the digest the writer returns is the file's SHA-256")
	require.EqualValues(t, 20, rep.Rows)
	require.Equal(t, hdr, rep.Header)
	require.EqualValues(t, len(file), progressed)
}

func TestVerifyArchiveCatchesEdits(t *testing.T) {
	t.Parallel()
	file, _, _ := testArchive(t)
	lines := gunzipLines(t, file)
	require.Len(t, lines, 21)
	for _, tc := range []struct {
		name   string
		edit   func(l []string) []string
		want   []string // kind@seq
		detail string
	}{
		{name: "one changed value", edit: func(l []string) []string {
			l[5] = strings.Replace(l[5], `"user-4"`, `"user-X"`, 1) // line 6, seq 5
			return l
		}, want: []string{"row_modified@5"}, detail: "line 6: chain 3 seq 5: pii values or pii_commitment differ"},
		{name: "changed core column", edit: func(l []string) []string {
			l[12] = strings.Replace(l[12], `"action":"a"`, `"action":"b"`, 1) // line 13, seq 12
			return l
		}, want: []string{"row_modified@12"}, detail: "line 13: chain 3 seq 12: stored hash differs"},
		{name: "line removed", edit: func(l []string) []string {
			return append(l[:3:3], l[4:]...) // seq 3 gone
		}, want: []string{"chain_gap@4", "row_modified@10"}, detail: "chain 3 seq 1..10: 9 rows, the header says 10"},
		{name: "last line removed", edit: func(l []string) []string {
			return l[:20]
		}, want: []string{"row_modified@20"}, detail: "chain 3 seq 11..20: rows end at seq 19"},
		{name: "header end hash changed", edit: func(l []string) []string {
			l[0] = strings.Replace(l[0], `"end_hash":"`, `"end_hash":"0`, 1)
			return l
		}, want: []string{"row_modified@10"}, detail: "the chain ends at a hash other than the header's end_hash"},
		{name: "garbage line", edit: func(l []string) []string {
			l[7] = "{not json\n"
			return l
		}, want: []string{"row_modified@0", "chain_gap@8", "row_modified@10"}, detail: "line 8: not an archive row"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			edited := gzipLines(t, tc.edit(append([]string(nil), lines...)))
			rep, err := VerifyArchive(bytes.NewReader(edited), nil)
			require.NoError(t, err)
			require.Equal(t, "tampered", rep.Status)
			require.Equal(t, tc.want, kinds(rep.Findings))
			var details []string
			for _, f := range rep.Findings {
				details = append(details, f.Detail)
			}
			require.Contains(t, strings.Join(details, " | "), tc.detail)
			require.NotContains(t, strings.Join(details, " | "), "user-", "findings name positions, never values")
		})
	}
}

func TestVerifyArchiveRejectsNonArchives(t *testing.T) {
	t.Parallel()
	_, err := VerifyArchive(strings.NewReader("plain text"), nil)
	require.ErrorContains(t, err, "not gzip")
	_, err = VerifyArchive(bytes.NewReader(gzipLines(t, []string{`{"format":"other","version":1,"hash_version":1,"ranges":[]}` + "\n"})), nil)
	require.ErrorContains(t, err, `format "other"`)
}

func TestArchiveWriterRefusesBrokenChains(t *testing.T) {
	t.Parallel()
	rows, stored, hashes := synthChain(5)
	g := Genesis(3)
	good := ArchiveRange{ChainID: 3, FirstSeq: 1, LastSeq: 5, RowCount: 5, StartHash: hex.EncodeToString(g[:]), EndHash: hex.EncodeToString(hashes[4][:])}
	write := func(rg ArchiveRange, edit func(i int, a *ArchiveRow)) error {
		aw, err := NewArchiveWriter(io.Discard, ArchiveHeader{Ranges: []ArchiveRange{rg}})
		if err != nil {
			return err
		}
		for i := range rows {
			a := archiveRowOf(rows[i], stored[i])
			edit(i, &a)
			if err := aw.WriteRow(&a); err != nil {
				return err
			}
		}
		_, err = aw.Close()
		return err
	}
	require.NoError(t, write(good, func(int, *ArchiveRow) {}))
	require.ErrorContains(t, write(good, func(i int, a *ArchiveRow) {
		if i == 2 {
			a.Action = "changed"
		}
	}), "chain 3 seq 3 (row id 102): stored hash differs")
	bad := good
	bad.EndHash = hex.EncodeToString(hashes[3][:])
	require.ErrorContains(t, write(bad, func(int, *ArchiveRow) {}), "ends at a hash other than the header's end_hash")
	bad = good
	bad.StartHash = hex.EncodeToString(hashes[0][:])
	require.ErrorContains(t, write(bad, func(int, *ArchiveRow) {}), "starts at seq 1 but not at the chain's genesis hash")
	require.ErrorContains(t, write(good, func(i int, a *ArchiveRow) {
		if i == 4 {
			a.ChainSeq = 7
		}
	}), "out of place")
}

func TestCompareManifests(t *testing.T) {
	t.Parallel()
	_, digest, hdr := testArchive(t)
	key := bytes.Repeat([]byte{7}, 32)
	keys := Keyring{"k1": key}
	manifests := func() []ArchiveManifest {
		var out []ArchiveManifest
		for i, rg := range hdr.Ranges {
			m := ArchiveManifest{ID: int64(i + 1), ChainID: rg.ChainID, FirstSeq: rg.FirstSeq, LastSeq: rg.LastSeq,
				EndHash: rg.EndHash, RowCount: rg.RowCount, ArchiveSHA256: digest}
			m.Seal("k1", key)
			out = append(out, m)
		}
		return out
	}
	require.Empty(t, CompareManifests(digest, hdr, manifests(), keys))

	m := manifests()
	m[1].MAC = strings.Repeat("0", 64)
	require.Equal(t, []string{"checkpoint_forged@11"}, kinds(CompareManifests(digest, hdr, m, keys)))
	require.Empty(t, CompareManifests(digest, hdr, m, nil), "without keys seals are not checked")

	require.Equal(t, []string{"row_modified@1", "row_modified@11"},
		kinds(CompareManifests(strings.Repeat("a", 64), hdr, manifests(), keys)), "another file's digest")
	require.Equal(t, []string{"chain_gap@11"}, kinds(CompareManifests(digest, hdr, manifests()[:1], keys)))
	m = manifests()
	m[0].LastSeq = 9
	require.Equal(t, []string{"checkpoint_mismatch@1"}, kinds(CompareManifests(digest, hdr, m, keys)))
	// a manifest naming this file for a range its header lacks
	extra := manifests()[1]
	extra.ID, extra.ChainID, extra.FirstSeq, extra.LastSeq = 9, 5, 100, 120
	extra.Seal("k1", key)
	require.Equal(t, []string{"chain_gap@100"}, kinds(CompareManifests(digest, hdr, append(manifests(), extra), keys)))
}

func BenchmarkVerifyArchive(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark")
	}
	rows, stored, hashes := synthChain(10000)
	g := Genesis(3)
	var buf bytes.Buffer
	aw, err := NewArchiveWriter(&buf, ArchiveHeader{Ranges: []ArchiveRange{{ChainID: 3, FirstSeq: 1, LastSeq: 10000, RowCount: 10000,
		StartHash: hex.EncodeToString(g[:]), EndHash: hex.EncodeToString(hashes[9999][:])}}})
	require.NoError(b, err)
	for i := range rows {
		a := archiveRowOf(rows[i], stored[i])
		require.NoError(b, aw.WriteRow(&a))
	}
	_, err = aw.Close()
	require.NoError(b, err)
	b.ResetTimer()
	for b.Loop() {
		rep, err := VerifyArchive(bytes.NewReader(buf.Bytes()), nil)
		if err != nil || !rep.Intact() {
			b.Fatal(err, rep.Findings)
		}
	}
	b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "rows/s")
}
