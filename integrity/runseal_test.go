package integrity

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// testdata/verification_runs.json was computed independently (Python's
// hashlib, hmac and json); the Go encoding must agree byte for byte.
func TestRunSealVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/verification_runs.json")
	require.NoError(t, err)
	var doc struct {
		KeyHex  string `json:"key_hex"`
		Vectors []struct {
			Name          string  `json:"name"`
			ID            int64   `json:"id"`
			Mode          string  `json:"mode"`
			Status        string  `json:"status"`
			StartedAtUS   int64   `json:"started_at_us"`
			FinishedAtUS  int64   `json:"finished_at_us"`
			Chains        []int32 `json:"chains"`
			RowsChecked   int64   `json:"rows_checked"`
			FindingsCount int     `json:"findings_count"`
			Findings      []struct {
				ChainID  int16  `json:"chain_id"`
				ChainSeq *int64 `json:"chain_seq"`
				RowID    *int64 `json:"row_id"`
				Kind     string `json:"kind"`
				Detail   string `json:"detail"`
			} `json:"findings"`
			Expected struct {
				FindingsDigest string `json:"findings_digest"`
				Message        string `json:"message"`
				MAC            string `json:"mac"`
			} `json:"expected"`
		} `json:"vectors"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	require.Len(t, doc.Vectors, 3)
	key, err := hex.DecodeString(doc.KeyHex)
	require.NoError(t, err)
	for _, v := range doc.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			var fs []FindingRecord
			for _, f := range v.Findings {
				fs = append(fs, FindingRecord{ChainID: f.ChainID, ChainSeq: f.ChainSeq, RowID: f.RowID, Kind: f.Kind, Detail: f.Detail})
			}
			r := RunSeal{ID: v.ID, Mode: v.Mode, Status: v.Status, StartedAtUS: v.StartedAtUS, FinishedAtUS: v.FinishedAtUS,
				Chains: v.Chains, RowsChecked: v.RowsChecked, FindingsCount: v.FindingsCount, FindingsDigest: FindingsDigest(fs)}
			require.Equal(t, v.Expected.FindingsDigest, r.FindingsDigest)
			require.Equal(t, v.Expected.Message, string(RunSealMessage(r)))
			require.Equal(t, v.Expected.MAC, RunMAC(key, r))
			// every field is bound: change any one and the MAC changes
			for _, edit := range []func(*RunSeal){
				func(r *RunSeal) { r.ID++ }, func(r *RunSeal) { r.Status = "other" }, func(r *RunSeal) { r.Mode = "other" },
				func(r *RunSeal) { r.StartedAtUS++ }, func(r *RunSeal) { r.FinishedAtUS++ },
				func(r *RunSeal) { r.Chains = append(r.Chains, 99) }, func(r *RunSeal) { r.RowsChecked++ },
				func(r *RunSeal) { r.FindingsCount++ }, func(r *RunSeal) { r.FindingsDigest = FindingsDigest(nil)[:63] + "0" },
			} {
				c := r
				c.Chains = append([]int32(nil), r.Chains...)
				edit(&c)
				require.NotEqual(t, v.Expected.MAC, RunMAC(key, c))
			}
		})
	}
}
