package embeddedpg

import (
	"context"
	"os"
	"strconv"
)

// StartStandby makes a streaming replica of s and starts it as a hot
// standby on a port of its own: a base backup over the replication
// protocol with -R, so the copy follows s from then on. It needs nothing
// from s beyond Start's defaults: wal_level=replica and max_wal_senders
// are PostgreSQL's defaults, and initdb's pg_hba.conf trusts replication
// connections from the loopback. cfg applies to the standby as to Start;
// max_connections must stay at least the primary's (200 unless changed).
// Stop it with Stop.
func (s *Server) StartStandby(ctx context.Context, cfg Config) (*Server, error) {
	st, err := newServer(s.binDir)
	if err != nil {
		return nil, err
	}
	// -c fast: an immediate checkpoint instead of waiting for a spread one
	if err := st.run(ctx, "pg_basebackup", "-D", st.DataDir(), "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port),
		"-U", "postgres", "-R", "-X", "stream", "-c", "fast", "--no-sync"); err != nil {
		os.RemoveAll(st.dir)
		return nil, err
	}
	if err := st.start(ctx, cfg); err != nil {
		os.RemoveAll(st.dir)
		return nil, err
	}
	return st, nil
}
