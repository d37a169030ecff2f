package integrity

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// Vector is one row of testdata/vectors.json. The SQL suite (tests/) checks
// the same file against the SQL functions.
type Vector struct {
	Name               string  `json:"name"`
	ID                 int64   `json:"id"`
	ChainID            int16   `json:"chain_id"`
	ChainSeq           int64   `json:"chain_seq"`
	TimestampUS        int64   `json:"timestamp_us"`
	RecordedAtUS       int64   `json:"recorded_at_us"`
	Action             string  `json:"action"`
	Status             string  `json:"status"`
	PrincipalType      *string `json:"principal_type"`
	OrganizationID     *string `json:"organization_id"`
	TargetResourceType *string `json:"target_resource_type"`
	EventVersion       *string `json:"event_version"`
	CorrelationID      *string `json:"correlation_id"`
	DataClassification string  `json:"data_classification"`
	RetentionPolicy    string  `json:"retention_policy"`
	ProcessingLatency  *int32  `json:"processing_latency"`
	TTL                *string `json:"ttl"`
	PrincipalID        *string `json:"principal_id"`
	TargetResourceID   *string `json:"target_resource_id"`
	SourceIPText       *string `json:"source_ip_text"`
	OutcomeDescription *string `json:"outcome_description"`
	DetailsText        *string `json:"details_text"`
	PIISalt            string  `json:"pii_salt"`
	PrevHash           string  `json:"prev_hash"`
	Expected           struct {
		PIIEncoding   string `json:"pii_encoding"`
		RowEncoding   string `json:"row_encoding"`
		PIICommitment string `json:"pii_commitment"`
		RowHash       string `json:"row_hash"`
		Hash          string `json:"hash"`
	} `json:"expected"`
}

func loadVectors(t *testing.T) []Vector {
	t.Helper()
	raw, err := os.ReadFile("testdata/vectors.json")
	require.NoError(t, err)
	var doc struct {
		Vectors []Vector `json:"vectors"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	require.GreaterOrEqual(t, len(doc.Vectors), 6)
	return doc.Vectors
}

// opt is a nullable text column: nil for NULL, the bytes otherwise.
func opt(s *string) []byte {
	if s == nil {
		return nil
	}
	return []byte(*s)
}

func TestVectors(t *testing.T) {
	t.Parallel()
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			r := Row{ID: v.ID, ChainID: v.ChainID, ChainSeq: v.ChainSeq, TimestampUS: v.TimestampUS,
				RecordedAtUS: v.RecordedAtUS, Action: []byte(v.Action), Status: []byte(v.Status),
				PrincipalType: opt(v.PrincipalType), OrganizationID: opt(v.OrganizationID),
				TargetResourceType: opt(v.TargetResourceType), EventVersion: opt(v.EventVersion),
				CorrelationID: opt(v.CorrelationID), DataClassification: []byte(v.DataClassification),
				RetentionPolicy: []byte(v.RetentionPolicy), TTL: opt(v.TTL), PrincipalID: opt(v.PrincipalID),
				TargetResourceID: opt(v.TargetResourceID), SourceIP: opt(v.SourceIPText),
				OutcomeDescription: opt(v.OutcomeDescription), Details: opt(v.DetailsText)}
			if v.ProcessingLatency != nil {
				r.ProcessingLatency, r.HasLatency = *v.ProcessingLatency, true
			}
			var enc Encoder
			require.Equal(t, v.Expected.PIIEncoding, string(enc.PIIEncoding(&r)))
			require.Equal(t, v.Expected.RowEncoding, string(enc.RowEncoding(&r)))

			salt, err := hex.DecodeString(v.PIISalt)
			require.NoError(t, err)
			pc := enc.PIICommitment(&r, salt)
			require.Equal(t, v.Expected.PIICommitment, hex.EncodeToString(pc[:]))
			rh := enc.RowHash(&r, pc[:])
			require.Equal(t, v.Expected.RowHash, hex.EncodeToString(rh[:]))

			var prev [32]byte
			_, err = hex.Decode(prev[:], []byte(v.PrevHash))
			require.NoError(t, err)
			if v.ChainSeq == 1 {
				require.Equal(t, prev, Genesis(v.ChainID), "a first row chains from genesis")
			}
			h := ChainHash(prev, rh)
			require.Equal(t, v.Expected.Hash, hex.EncodeToString(h[:]))
		})
	}
}

func TestJSONStringEscaping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "abc", `"abc"`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"named escapes", "\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"other control bytes in lowercase hex", "\x01\x1f\x0b", `"\u0001\u001f\u000b"`},
		{"DEL and non-ASCII copied", "\x7fé😀", "\"\x7fé😀\""},
		{"slash not escaped", "a/b", `"a/b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, string(appendJSONString(nil, []byte(tc.in))))
		})
	}
}

func TestCheckpointMAC(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	a := CheckpointMAC(key, 3, 42, "ab", 1700000000000000)
	require.Len(t, a, 64)
	require.Equal(t, a, CheckpointMAC(key, 3, 42, "ab", 1700000000000000))
	require.NotEqual(t, a, CheckpointMAC(key, 3, 43, "ab", 1700000000000000), "the seq is covered")
	require.NotEqual(t, a, CheckpointMAC([]byte("other"), 3, 42, "ab", 1700000000000000), "the key matters")
}
