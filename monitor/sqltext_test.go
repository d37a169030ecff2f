package monitor

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNormalizeSQL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, sql, want string
	}{
		{"parameters stay", "SELECT id FROM audit.audit_log WHERE id = $1 AND chain_id = $2", "SELECT id FROM audit.audit_log WHERE id = $1 AND chain_id = $2"},
		{"string literal", "SELECT * FROM t WHERE name = 'Jane O''Brien'", "SELECT * FROM t WHERE name = ?"},
		{"escape string", `SELECT E'it\'s secret', 1`, "SELECT ?, ?"},
		{"dollar quoted", "SELECT $tag$ MRN 12345 $tag$, $$x$$", "SELECT ?, ?"},
		{"numbers", "SELECT 42, 3.14, .5, 1e-5 FROM t1 LIMIT 10", "SELECT ?, ?, ?, ? FROM t1 LIMIT ?"},
		{"comments and spaces", "SELECT 1 -- patient Jane\n  /* ssn /* 123 */ */ FROM\n\tt", "SELECT ? FROM t"},
		{"quoted identifier kept", `SELECT "timestamp" FROM t WHERE x='a'`, `SELECT "timestamp" FROM t WHERE x=?`},
		{"cast and type", "SELECT '2024-01-01'::timestamptz", "SELECT ?::timestamptz"},
		{"unterminated literal", "SELECT 'open", "SELECT ?"},
		{"identifier with digits", "SELECT col2 FROM tab_3", "SELECT col2 FROM tab_3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, NormalizeSQL(tt.sql))
		})
	}
}

func TestNormalizeSQLCutsLongStatements(t *testing.T) {
	t.Parallel()
	sql := "SELECT " + strings.Repeat("some_column_name, ", 100) + "x FROM t"
	got := NormalizeSQL(sql)
	require.True(t, strings.HasSuffix(got, "…"))
	require.LessOrEqual(t, len(got), normalizedMaxLen+len("…"))
	require.True(t, strings.HasPrefix(got, "SELECT some_column_name, some_column_name,"))
}

func TestFingerprintGroupsByShape(t *testing.T) {
	t.Parallel()
	a := Fingerprint("SELECT * FROM t WHERE name = 'alice' AND n = 1")
	b := Fingerprint("SELECT *  FROM t\nWHERE name = 'bob' AND n = 2 -- retry")
	c := Fingerprint("SELECT * FROM t WHERE other = 'alice' AND n = 1")
	require.Equal(t, a, b)
	require.NotEqual(t, a, c)
	require.Len(t, a, 16)
}
