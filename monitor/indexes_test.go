package monitor

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

// execFlushed runs statements on one connection and makes that backend
// flush its statistics, so that the next query on any connection sees the
// scans and row counts.
func execFlushed(t *testing.T, pool *pgxpool.Pool, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	for _, s := range stmts {
		_, err := conn.Exec(ctx, s)
		require.NoError(t, err, s)
	}
	// the flush happens when the backend goes idle after this statement,
	// before it answers
	_, err = conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
	require.NoError(t, err)
}

func findingsOf(rep *IndexReport, kind FindingKind) map[string]Finding {
	out := map[string]Finding{}
	for _, f := range rep.Findings {
		if f.Kind == kind {
			key := f.Index
			if key == "" {
				key = f.Table
			}
			out[key] = f
		}
	}
	return out
}

// scratchSchema makes tables outside audit with the problems the analysis
// looks for: two redundant indexes (a copy and a prefix), an unused index,
// a bloated index (90% of rows deleted), a table never analysed.
func scratchSchema(t *testing.T, pool *pgxpool.Pool) {
	execFlushed(t, pool,
		// no autovacuum: it would analyse the tables under the test
		`CREATE SCHEMA scratch`,
		`CREATE TABLE scratch.items (id bigint PRIMARY KEY, a int, b int, note text) WITH (autovacuum_enabled = false)`,
		`CREATE INDEX items_a_idx ON scratch.items (a)`,
		`CREATE INDEX items_a_copy_idx ON scratch.items (a)`,
		`CREATE INDEX items_a_b_idx ON scratch.items (a, b)`,
		`CREATE INDEX items_note_idx ON scratch.items (note)`,
		`CREATE INDEX items_note_copy_idx ON scratch.items (note)`,
		`CREATE INDEX items_b_idx ON scratch.items (b)`,
		`INSERT INTO scratch.items SELECT g, (g * 7919) % 100000, g % 1000, 'n' || (g % 50) FROM generate_series(1, 100000) g`,
		`DELETE FROM scratch.items WHERE id % 10 <> 0`,
		// counters go to the shared statistics at most once a second unless
		// forced; ANALYZE must come after them to reset them
		`SELECT pg_stat_force_next_flush()`,
		`VACUUM scratch.items`,
		`ANALYZE scratch.items`,
		`SET enable_seqscan = off`,
		`SELECT count(*) FROM scratch.items WHERE a = 5 AND b = 3`,
		`SELECT count(*) FROM scratch.items WHERE b = 3`,
		`RESET enable_seqscan`,
		`CREATE TABLE scratch.fresh (id int) WITH (autovacuum_enabled = false)`,
		`INSERT INTO scratch.fresh SELECT generate_series(1, 5000)`,
		// what a failed CREATE INDEX CONCURRENTLY leaves behind
		`CREATE INDEX fresh_id_idx ON scratch.fresh (id)`,
		`UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'scratch.fresh_id_idx'::regclass`,
	)
}

func TestAnalyzeIndexes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		pgstattuple bool
		method      string
	}{
		{"estimate", false, BloatMethodEstimate},
		{"pgstattuple", true, BloatMethodPgstattuple},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := harness.NewDB(t)
			ctx := context.Background()
			if tc.pgstattuple {
				_, err := db.Pool.Exec(ctx, `CREATE EXTENSION pgstattuple`)
				require.NoError(t, err)
			}
			scratchSchema(t, db.Pool)
			rep, err := AnalyzeIndexes(ctx, db.Pool, OptimizeConfig{
				Schemas: []string{"scratch"}, UnusedMinStatsAge: -1, BloatMinBytes: 64 << 10,
			})
			require.NoError(t, err)
			require.Equal(t, tc.method, rep.BloatMethod)
			require.True(t, rep.UnusedChecked)
			require.Equal(t, StatementsNotInstalled, rep.Statements)

			dups := findingsOf(rep, FindingDuplicateIndex)
			require.Contains(t, dups, "scratch.items_a_idx")
			require.Contains(t, dups["scratch.items_a_idx"].Detail, "a leading prefix of scratch.items_a_b_idx")
			require.Contains(t, dups, "scratch.items_a_copy_idx")
			require.Contains(t, dups["scratch.items_note_idx"].Detail, "same definition as scratch.items_note_copy_idx")
			require.NotContains(t, dups, "scratch.items_note_copy_idx", "one of two copies stays")
			require.NotContains(t, dups, "scratch.items_a_b_idx")
			require.Len(t, dups, 3)

			unused := findingsOf(rep, FindingUnusedIndex)
			require.Contains(t, unused, "scratch.items_note_copy_idx")
			require.NotContains(t, unused, "scratch.items_pkey", "unique indexes enforce something")
			require.NotContains(t, unused, "scratch.items_a_b_idx", "scanned")
			require.NotContains(t, unused, "scratch.items_b_idx", "scanned")
			require.NotContains(t, unused, "scratch.items_a_idx", "reported as a duplicate already")

			invalid := findingsOf(rep, FindingInvalidIndex)
			require.Len(t, invalid, 1)
			require.Equal(t, "DROP INDEX CONCURRENTLY scratch.fresh_id_idx, then rebuild it if it is needed", invalid["scratch.fresh_id_idx"].Recommendation)

			bloated := findingsOf(rep, FindingBloatedIndex)
			require.Contains(t, bloated, "scratch.items_b_idx")
			require.Equal(t, &Action{Kind: ActionReindex, Target: "scratch.items_b_idx",
				SQL: "REINDEX INDEX CONCURRENTLY scratch.items_b_idx"}, bloated["scratch.items_b_idx"].Action)

			stale := findingsOf(rep, FindingStaleStatistics)
			require.Contains(t, stale, "scratch.fresh")
			require.NotContains(t, stale, "scratch.items", "analysed after the changes")
			require.Equal(t, ActionAnalyze, stale["scratch.fresh"].Action.Kind)

			// Apply: ANALYZE first, then reindexes; afterwards the bloat
			// and the staleness are gone.
			actions := rep.Actions()
			require.Equal(t, ActionAnalyze, actions[0].Kind)
			var before int64
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT pg_relation_size('scratch.items_b_idx')`).Scan(&before))
			for _, a := range actions {
				require.NoError(t, ApplyAction(ctx, db.Pool, a), a.SQL)
			}
			var after int64
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT pg_relation_size('scratch.items_b_idx')`).Scan(&after))
			require.Less(t, after*3, before, "rebuilt index is much smaller")
			execFlushed(t, db.Pool)
			rep, err = AnalyzeIndexes(ctx, db.Pool, OptimizeConfig{
				Schemas: []string{"scratch"}, UnusedMinStatsAge: -1, BloatMinBytes: 64 << 10,
			})
			require.NoError(t, err)
			require.Empty(t, findingsOf(rep, FindingBloatedIndex))
			require.Empty(t, findingsOf(rep, FindingStaleStatistics))
		})
	}
}

func TestAnalyzeIndexesUnusedNeedsOldCounters(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	scratchSchema(t, db.Pool)
	rep, err := AnalyzeIndexes(context.Background(), db.Pool, OptimizeConfig{Schemas: []string{"scratch"}, UnusedMinStatsAge: 1000 * 24 * 3600e9})
	require.NoError(t, err)
	require.False(t, rep.UnusedChecked, "counters of a fresh server are not old enough")
	require.Empty(t, findingsOf(rep, FindingUnusedIndex))
}

// The audit log's partitions: bloat shows up on a partition's index, whose
// reindex runs; the partitioned parent's index is never a target, and
// ApplyAction refuses it when asked directly.
func TestOptimizeAuditLogPartitions(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	var partition string
	require.NoError(t, db.Pool.QueryRow(ctx,
		`SELECT partition_name FROM audit.partitions() WHERE range_start <= now() AND range_end > now()`).Scan(&partition))
	execFlushed(t, db.Pool,
		`INSERT INTO audit.audit_log ("timestamp", action, status, principal_id)
		 SELECT now(), 'a', 'success', 'u' || g FROM generate_series(1, 30000) g`,
		`BEGIN; SET LOCAL auditdb.maintenance = 'retention';
		 DELETE FROM audit.audit_log WHERE id % 10 <> 0; COMMIT`,
		`SELECT pg_stat_force_next_flush()`,
		// the partition only: the parent stays unanalysed, as autovacuum
		// leaves it
		`VACUUM (ANALYZE) audit.`+partition,
	)
	rep, err := AnalyzeIndexes(ctx, db.Pool, OptimizeConfig{BloatMinBytes: 64 << 10, UnusedMinStatsAge: -1})
	require.NoError(t, err)
	bloated := findingsOf(rep, FindingBloatedIndex)
	require.Contains(t, bloated, "audit."+partition+"_principal_id_timestamp_idx")
	for _, a := range rep.Actions() {
		if a.Kind != ActionReindex {
			continue
		}
		var kind string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = $1::regclass`, a.Target).Scan(&kind))
		require.Equal(t, "i", kind, "only leaf indexes: %s", a.Target)
		require.NoError(t, ApplyAction(ctx, db.Pool, a))
	}
	stale := findingsOf(rep, FindingStaleStatistics)
	require.Contains(t, stale, "audit.audit_log", "the parent is never analysed by autovacuum")
	require.NoError(t, ApplyAction(ctx, db.Pool, *stale["audit.audit_log"].Action))

	err = ApplyAction(ctx, db.Pool, Action{Kind: ActionReindex, Target: "audit.audit_log_principal_ts_idx"})
	require.ErrorIs(t, err, ErrPartitionedIndex)
	err = ApplyAction(ctx, db.Pool, Action{Kind: ActionReindex, Target: "audit.audit_log"})
	require.ErrorContains(t, err, "wrong kind of relation")
	err = ApplyAction(ctx, db.Pool, Action{Kind: "drop", Target: "audit.audit_log"})
	require.ErrorContains(t, err, "not a safe action")

	// every index in the partition tree is still valid and attached
	var invalid int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_partition_tree('audit.audit_log_principal_ts_idx') t
		JOIN pg_index i ON i.indexrelid = t.relid WHERE NOT i.indisvalid`).Scan(&invalid))
	require.Zero(t, invalid)
	var leaves int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_partition_tree('audit.audit_log_principal_ts_idx') WHERE isleaf`).Scan(&leaves))
	require.GreaterOrEqual(t, leaves, 5)

	// the parent's ANALYZE counted: it is no longer stale
	rep, err = AnalyzeIndexes(ctx, db.Pool, OptimizeConfig{BloatMinBytes: 64 << 10})
	require.NoError(t, err)
	require.NotContains(t, findingsOf(rep, FindingStaleStatistics), "audit.audit_log")
	require.NotContains(t, findingsOf(rep, FindingBloatedIndex), "audit."+partition+"_principal_id_timestamp_idx")
}

// ANALYZE through audit.analyze_table works for the worker's role, which
// does not own the tables; other schemas' tables are refused.
// A reindex only the owner may run is a recommendation for a role that
// does not own the table, not an action bound to fail.
func TestAnalyzeAsMaintainer(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	maint := db.LoginRole(t, "audit_maintainer")
	require.NoError(t, ApplyAction(ctx, maint, Action{Kind: ActionAnalyze, Target: "audit.audit_log"}))
	_, err := maint.Exec(ctx, `SELECT audit.analyze_table('pg_catalog.pg_class')`)
	require.ErrorContains(t, err, "is not a table of schema audit")

	scratchSchema(t, db.Pool)
	_, err = db.Pool.Exec(ctx, `GRANT USAGE ON SCHEMA scratch TO audit_maintainer; GRANT SELECT ON scratch.items TO audit_maintainer`)
	require.NoError(t, err)
	cfg := OptimizeConfig{Schemas: []string{"scratch"}, BloatMinBytes: 64 << 10}
	rep, err := AnalyzeIndexes(ctx, maint, cfg)
	require.NoError(t, err)
	f := findingsOf(rep, FindingBloatedIndex)["scratch.items_b_idx"]
	require.Nil(t, f.Action)
	require.Equal(t, "REINDEX INDEX CONCURRENTLY scratch.items_b_idx as the table's owner (the role that ran migrate)", f.Recommendation)
	rep, err = AnalyzeIndexes(ctx, db.Pool, cfg)
	require.NoError(t, err)
	require.NotNil(t, findingsOf(rep, FindingBloatedIndex)["scratch.items_b_idx"].Action, "the owner gets the action")
}

func TestOptimizeConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  OptimizeConfig
		want string
	}{
		{"defaults", OptimizeConfig{}, ""},
		{"ratio", OptimizeConfig{BloatRatio: 1.5}, "BloatRatio"},
		{"bytes", OptimizeConfig{BloatMinBytes: -1}, "BloatMinBytes"},
		{"mods", OptimizeConfig{StaleMinMods: -1}, "StaleMinMods"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.WithDefaults().Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}
