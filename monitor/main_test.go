package monitor

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

func TestMain(m *testing.M) {
	harness.Main(m, harness.Options{})
}

// tracedPool opens a pool on db with tracer attached.
func tracedPool(t *testing.T, db *harness.DB, tracer pgx.QueryTracer) *pgxpool.Pool {
	t.Helper()
	pcfg, err := pgxpool.ParseConfig(db.URL)
	require.NoError(t, err)
	pcfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// syncBuffer is a bytes.Buffer a logger may write to from several
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func pgxStart(sql string) pgx.TraceQueryStartData { return pgx.TraceQueryStartData{SQL: sql} }
