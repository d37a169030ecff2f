package client

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

func TestReplicaConfig(t *testing.T) {
	t.Parallel()
	d := Config{}.WithDefaults()
	require.Equal(t, 5*time.Second, d.ReplicaMaxLag)
	require.Equal(t, time.Second, d.ReplicaCheckInterval)

	base := Config{URL: "postgres://u@127.0.0.1/db"}
	bad := base
	bad.ReplicaURL = "postgres://u:hunter2@[::1"
	err := bad.Validate()
	require.ErrorContains(t, err, "client: ReplicaURL: cannot be parsed")
	require.NotContains(t, err.Error(), "hunter2")
	neg := base
	neg.ReplicaMaxLag = -time.Second
	require.ErrorContains(t, neg.Validate(), "client: ReplicaMaxLag: must not be negative")
	neg = base
	neg.ReplicaCheckInterval = -time.Second
	require.ErrorContains(t, neg.Validate(), "client: ReplicaCheckInterval: must not be negative")

	cfg, err := configFromEnv(func(k string) string {
		return map[string]string{EnvReplica: " postgres://r@127.0.0.1:5433/db "}[k]
	})
	require.NoError(t, err)
	require.Equal(t, "postgres://r@127.0.0.1:5433/db", cfg.ReplicaURL)
	_, err = configFromEnv(func(k string) string { return map[string]string{EnvReplica: "postgres://u:pw@[::1"}[k] })
	require.ErrorContains(t, err, "client: AUDIT_DB_REPLICA_URL: cannot be parsed")
}

func TestParseLSN(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0/0", 0, true},
		{"0/3000148", 0x3000148, true},
		{"16/B374D848", 0x16<<32 | 0xB374D848, true},
		{"x/1", 0, false},
		{"12345", 0, false},
	} {
		got, err := parseLSN(tc.in)
		if !tc.ok {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}

// serverOf says which server a pool reaches: its port, and whether it is a
// standby.
func serverOf(t *testing.T, pool *pgxpool.Pool) (int, bool) {
	t.Helper()
	var port int
	var standby bool
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT inet_server_port(), pg_is_in_recovery()`).Scan(&port, &standby))
	return port, standby
}

// TestReplicaRouting runs one scenario on a primary and a streaming
// standby of its own: reads go to the standby, writes to the primary; a
// standby whose replay is paused falls behind and reads go back to the
// primary until it catches up; a stopped standby sends reads to the
// primary without an error.
func TestReplicaRouting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := harness.StartReplicated(t)
	c, err := NewWithConfig(ctx, Config{
		URL:                  r.PrimaryURL,
		ReplicaURL:           r.StandbyURL,
		ReplicaMaxLag:        300 * time.Millisecond,
		ReplicaCheckInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	defer c.Close()
	standbyAdmin, err := pgxpool.New(ctx, r.StandbyURL)
	require.NoError(t, err)
	defer standbyAdmin.Close()

	// writes go to the primary; reads find them on the standby
	first, err := c.Insert(ctx, validEvent(1))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := c.Get(ctx, first.ID)
		st, _ := c.ReplicaState()
		return err == nil && st.InUse
	}, 20*time.Second, 20*time.Millisecond)
	port, standby := serverOf(t, c.ReadPool(ctx))
	require.Equal(t, r.Standby.Port, port)
	require.True(t, standby)
	port, standby = serverOf(t, c.Pool())
	require.Equal(t, r.Primary.Port, port)
	require.False(t, standby)

	// an idle primary: the last replayed commit grows older than the bound,
	// but the standby has everything, so it stays in use
	time.Sleep(3 * 300 * time.Millisecond)
	require.Eventually(t, func() bool {
		port, _ := serverOf(t, c.ReadPool(ctx))
		st, _ := c.ReplicaState()
		return port == r.Standby.Port && st.InUse && st.Lag == 0 && st.BytesBehind == 0
	}, 10*time.Second, 20*time.Millisecond)

	// the standby stops replaying: it falls behind, and reads go to the
	// primary, where the new event is
	_, err = standbyAdmin.Exec(ctx, `SELECT pg_wal_replay_pause()`)
	require.NoError(t, err)
	second, err := c.Insert(ctx, validEvent(2))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		c.ReadPool(ctx) // a read refreshes the state
		st, _ := c.ReplicaState()
		return !st.InUse && strings.Contains(st.Reason, "lags") && st.BytesBehind > 0
	}, 20*time.Second, 20*time.Millisecond)
	port, _ = serverOf(t, c.ReadPool(ctx))
	require.Equal(t, r.Primary.Port, port)
	got, err := c.Get(ctx, second.ID)
	require.NoError(t, err)
	require.Equal(t, second.Hash, got.Hash)
	var onStandby int
	require.NoError(t, standbyAdmin.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log`).Scan(&onStandby))
	require.Equal(t, 1, onStandby, "the standby has not replayed the second event")

	// replay resumes: reads go back to the standby
	_, err = standbyAdmin.Exec(ctx, `SELECT pg_wal_replay_resume()`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		port, _ := serverOf(t, c.ReadPool(ctx))
		return port == r.Standby.Port
	}, 20*time.Second, 20*time.Millisecond)
	n, err := c.Count(ctx, Query{})
	require.NoError(t, err)
	require.Equal(t, int64(2), n)

	// the standby goes away: reads still answer, from the primary
	standbyAdmin.Close()
	require.NoError(t, r.Standby.Stop())
	page, err := c.Search(ctx, Query{})
	require.NoError(t, err)
	require.Len(t, page.Events, 2)
	n, err = c.Count(ctx, Query{})
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	_, err = c.Get(ctx, first.ID)
	require.NoError(t, err)
	st, ok := c.ReplicaState()
	require.True(t, ok)
	require.False(t, st.InUse)
	require.NotEmpty(t, st.Reason)
	port, _ = serverOf(t, c.ReadPool(ctx))
	require.Equal(t, r.Primary.Port, port)
}

// TestReplicaFailedReadFallsBack checks the retry itself: a read that
// fails on the replica between two checks is run again on the primary.
func TestReplicaFailedReadFallsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := harness.StartReplicated(t)
	c, err := NewWithConfig(ctx, Config{
		URL:                  r.PrimaryURL,
		ReplicaURL:           r.StandbyURL,
		ReplicaCheckInterval: time.Hour, // no check between the stop and the read
		ReplicaMaxLag:        time.Hour,
	})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Insert(ctx, validEvent(1))
	require.NoError(t, err)
	// once the standby has replayed the insert its lag is known (and far
	// below the bound), so the first read's check picks it
	standbyAdmin, err := pgxpool.New(ctx, r.StandbyURL)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var n int
		err := standbyAdmin.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log`).Scan(&n)
		return err == nil && n == 1
	}, 20*time.Second, 20*time.Millisecond)
	standbyAdmin.Close()
	port, _ := serverOf(t, c.ReadPool(ctx))
	require.Equal(t, r.Standby.Port, port)

	require.NoError(t, r.Standby.Stop())
	n, err := c.Count(ctx, Query{})
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	st, _ := c.ReplicaState()
	require.False(t, st.InUse)
	// "connection failed", or the shutdown notice an idle connection got
	require.True(t, strings.HasPrefix(st.Reason, "a read on the replica failed: "), st.Reason)
}

func TestNoReplica(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, Config{})
	require.Same(t, c.Pool(), c.ReadPool(context.Background()))
	_, ok := c.ReplicaState()
	require.False(t, ok)
}
