package monitor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of OptimizeConfig, applied by WithDefaults to fields left zero.
const (
	OptimizeUnusedMinStatsAgeDefault time.Duration = 7 * 24 * time.Hour
	OptimizeBloatRatioDefault                      = 0.3
	OptimizeBloatMinBytesDefault     int64         = 8 << 20
	OptimizeSeqScanMinRowsDefault    int64         = 10000
	OptimizeSeqScanMinScansDefault   int64         = 50
	OptimizeStaleModRatioDefault                   = 0.1
	OptimizeStaleMinModsDefault      int64         = 1000
	OptimizeStaleParentAgeDefault    time.Duration = 24 * time.Hour
	// OptimizeSlowQueryDefault is SlowQueryThresholdDefault, the one
	// default.
	OptimizeSlowQueryDefault               = SlowQueryThresholdDefault
	OptimizeSlowQueryMinCallsDefault int64 = 5
)

// OptimizeConfig holds the thresholds of the index and table analysis.
// Fields left zero take their defaults.
type OptimizeConfig struct {
	// Schemas are the schemas whose tables and indexes are analysed.
	// Defaults to ["audit"].
	Schemas []string
	// UnusedMinStatsAge is how long the statistics must have been collected
	// (since pg_stat_database.stats_reset, or since the server started when
	// they were never reset) before an index that was never scanned counts
	// as unused. A negative value trusts counters of any age. Defaults to 7
	// days.
	UnusedMinStatsAge time.Duration
	// BloatRatio is the estimated share of an index that is wasted above
	// which it is bloated. Defaults to 0.3.
	BloatRatio float64
	// BloatMinBytes: smaller indexes are never reported bloated (rebuilding
	// them gains nothing). Defaults to 8 MiB.
	BloatMinBytes int64
	// SeqScanMinRows: tables with fewer live rows are never reported for
	// sequential scans. Defaults to 10000.
	SeqScanMinRows int64
	// SeqScanMinScans: tables scanned sequentially fewer times are never
	// reported. Defaults to 50.
	SeqScanMinScans int64
	// StaleModRatio: a table's statistics are stale when the rows changed
	// since its last ANALYZE exceed this share of its live rows (and
	// StaleMinMods). Defaults to 0.1.
	StaleModRatio float64
	// StaleMinMods is the fewest changed rows that make statistics stale.
	// Defaults to 1000.
	StaleMinMods int64
	// StaleParentAge: autovacuum never analyses a partitioned parent, so
	// its statistics are stale when it was never analysed or not within
	// this long while its partitions changed. Defaults to 24h.
	StaleParentAge time.Duration
	// SlowQuery is the mean execution time above which a statement in
	// pg_stat_statements is reported. Defaults to 1s
	// (AUDIT_SLOW_QUERY_THRESHOLD).
	SlowQuery time.Duration
	// SlowQueryMinCalls: statements called fewer times are not reported.
	// Defaults to 5.
	SlowQueryMinCalls int64
}

// WithDefaults returns c with every field left zero set to its default.
func (c OptimizeConfig) WithDefaults() OptimizeConfig {
	if len(c.Schemas) == 0 {
		c.Schemas = []string{"audit"}
	}
	if c.UnusedMinStatsAge == 0 {
		c.UnusedMinStatsAge = OptimizeUnusedMinStatsAgeDefault
	}
	if c.BloatRatio == 0 {
		c.BloatRatio = OptimizeBloatRatioDefault
	}
	if c.BloatMinBytes == 0 {
		c.BloatMinBytes = OptimizeBloatMinBytesDefault
	}
	if c.SeqScanMinRows == 0 {
		c.SeqScanMinRows = OptimizeSeqScanMinRowsDefault
	}
	if c.SeqScanMinScans == 0 {
		c.SeqScanMinScans = OptimizeSeqScanMinScansDefault
	}
	if c.StaleModRatio == 0 {
		c.StaleModRatio = OptimizeStaleModRatioDefault
	}
	if c.StaleMinMods == 0 {
		c.StaleMinMods = OptimizeStaleMinModsDefault
	}
	if c.StaleParentAge == 0 {
		c.StaleParentAge = OptimizeStaleParentAgeDefault
	}
	if c.SlowQuery == 0 {
		c.SlowQuery = OptimizeSlowQueryDefault
	}
	if c.SlowQueryMinCalls == 0 {
		c.SlowQueryMinCalls = OptimizeSlowQueryMinCallsDefault
	}
	return c
}

// Validate reports the first field out of range.
func (c OptimizeConfig) Validate() error {
	switch {
	case c.BloatRatio <= 0 || c.BloatRatio >= 1:
		return fmt.Errorf("optimize BloatRatio: must be between 0 and 1 (exclusive), got %g", c.BloatRatio)
	case c.BloatMinBytes < 0:
		return fmt.Errorf("optimize BloatMinBytes: must not be negative, got %d", c.BloatMinBytes)
	case c.SeqScanMinRows < 0 || c.SeqScanMinScans < 0 || c.StaleMinMods < 0 || c.SlowQueryMinCalls < 0:
		return errors.New("optimize SeqScanMinRows, SeqScanMinScans, StaleMinMods, SlowQueryMinCalls: must not be negative")
	case c.StaleModRatio < 0:
		return fmt.Errorf("optimize StaleModRatio: must not be negative, got %g", c.StaleModRatio)
	case c.StaleParentAge < 0 || c.SlowQuery < 0:
		return errors.New("optimize StaleParentAge, SlowQuery: must not be negative")
	}
	return nil
}

// FindingKind names what the analysis found.
type FindingKind string

// The kinds of Finding.
const (
	FindingUnusedIndex     FindingKind = "unused_index"
	FindingInvalidIndex    FindingKind = "invalid_index"
	FindingDuplicateIndex  FindingKind = "duplicate_index"
	FindingBloatedIndex    FindingKind = "bloated_index"
	FindingSeqScanHeavy    FindingKind = "seq_scan_heavy"
	FindingStaleStatistics FindingKind = "stale_statistics"
	FindingSlowQuery       FindingKind = "slow_query"
)

// ActionKind names a safe action: one Apply runs without asking.
type ActionKind string

// The safe actions.
const (
	// ActionAnalyze runs ANALYZE on a table (a partitioned parent included:
	// ANALYZE takes no CONCURRENTLY and only a share-update-exclusive lock).
	ActionAnalyze ActionKind = "analyze"
	// ActionReindex runs REINDEX INDEX CONCURRENTLY on one leaf index (of a
	// partition or a plain table), never on a partitioned index.
	ActionReindex ActionKind = "reindex"
)

// Action is a safe action, ready to apply.
type Action struct {
	Kind ActionKind `json:"kind"`
	// Target is the schema-qualified, quoted name of the table (analyze)
	// or index (reindex).
	Target string `json:"target"`
	// SQL is the statement Apply runs, for display.
	SQL string `json:"sql"`
}

// Finding is one thing the analysis found, with either a safe Action or a
// Recommendation for a person.
type Finding struct {
	Kind  FindingKind `json:"kind"`
	Table string      `json:"table,omitempty"`
	Index string      `json:"index,omitempty"`
	// Detail says what was measured.
	Detail string `json:"detail"`
	// Action is set when the fix is safe to run automatically.
	Action *Action `json:"action,omitempty"`
	// Recommendation is set when the fix needs a person (dropping an
	// index, adding one, a slow statement).
	Recommendation string `json:"recommendation,omitempty"`
}

// How the report estimated bloat.
const (
	BloatMethodPgstattuple = "pgstattuple" // pgstatindex(): exact leaf density
	BloatMethodEstimate    = "estimate"    // relpages against reltuples × average width from pg_stats
)

// IndexReport is the result of AnalyzeIndexes.
type IndexReport struct {
	GeneratedAt time.Time `json:"generated_at"`
	// StatsSince is when the usage counters started counting, and
	// StatsSinceSource where that came from: "stats_reset" or
	// "server_start" (PostgreSQL 15 keeps counters across clean restarts,
	// so the server start is a lower bound on their age).
	StatsSince       time.Time `json:"stats_since"`
	StatsSinceSource string    `json:"stats_since_source"`
	// UnusedChecked is false when the counters are younger than
	// UnusedMinStatsAge and unused indexes were therefore not judged.
	UnusedChecked bool `json:"unused_checked"`
	// BloatMethod is BloatMethodPgstattuple or BloatMethodEstimate.
	BloatMethod string `json:"bloat_method"`
	// Statements says whether pg_stat_statements fed the slow-query part:
	// "available", "not installed", or why it could not be read.
	Statements string    `json:"pg_stat_statements"`
	Findings   []Finding `json:"findings"`
}

// Actions returns the safe actions of the report's findings, each once:
// ANALYZE first (so that a following analysis sees fresh statistics), then
// the reindexes.
func (r *IndexReport) Actions() []Action {
	var out []Action
	for _, f := range r.Findings {
		if f.Action != nil && !slices.Contains(out, *f.Action) {
			out = append(out, *f.Action)
		}
	}
	slices.SortStableFunc(out, func(a, b Action) int {
		if a.Kind == b.Kind {
			return 0
		}
		if a.Kind == ActionAnalyze {
			return -1
		}
		return 1
	})
	return out
}

// AnalyzeIndexes reads the statistics views and catalogs and returns what
// they show: unused, duplicate and bloated indexes, tables whose sequential
// scans suggest a missing index, stale statistics and (when
// pg_stat_statements can be read) slow statements. It changes nothing.
func AnalyzeIndexes(ctx context.Context, pool *pgxpool.Pool, cfg OptimizeConfig) (*IndexReport, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rep := &IndexReport{Findings: []Finding{}}
	var statsReset *time.Time
	if err := pool.QueryRow(ctx, `SELECT now(), pg_postmaster_start_time(),
		(SELECT stats_reset FROM pg_stat_database WHERE datname = current_database())`).
		Scan(&rep.GeneratedAt, &rep.StatsSince, &statsReset); err != nil {
		return nil, fmt.Errorf("optimize: statistics age: %w", err)
	}
	rep.StatsSinceSource = "server_start"
	if statsReset != nil {
		rep.StatsSince, rep.StatsSinceSource = *statsReset, "stats_reset"
	}
	rep.UnusedChecked = cfg.UnusedMinStatsAge < 0 || rep.GeneratedAt.Sub(rep.StatsSince) >= cfg.UnusedMinStatsAge

	steps := []func(context.Context, *pgxpool.Pool, OptimizeConfig, *IndexReport) error{
		analyzeIndexUsage, analyzeBloat, analyzeTables, analyzeStatements,
	}
	for _, step := range steps {
		if err := step(ctx, pool, cfg, rep); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// optimizeIndex is one index that is not attached to a partitioned index:
// a partitioned index stands for all its partitions' indexes, whose scans
// are summed.
type optimizeIndex struct {
	name, table         string
	partitioned         bool
	unique, constraint  bool
	am                  string
	keys, opclass, opts []string
	collation           string
	exprs, pred         string
	scans, bytes        int64
}

func analyzeIndexUsage(ctx context.Context, pool *pgxpool.Pool, cfg OptimizeConfig, rep *IndexReport) error {
	rows, err := pool.Query(ctx, `
SELECT format('%I.%I', n.nspname, ic.relname), format('%I.%I', n.nspname, tc.relname),
       ic.relkind = 'I', i.indisunique OR i.indisprimary,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid),
       am.amname, i.indkey::text, i.indclass::text, i.indoption::text, i.indcollation::text,
       coalesce(pg_get_expr(i.indexprs, i.indrelid), ''), coalesce(pg_get_expr(i.indpred, i.indrelid), ''),
       coalesce(CASE WHEN ic.relkind = 'I'
            THEN (SELECT sum(s.idx_scan) FROM pg_partition_tree(i.indexrelid) t
                  JOIN pg_stat_all_indexes s ON s.indexrelid = t.relid)
            ELSE (SELECT s.idx_scan FROM pg_stat_all_indexes s WHERE s.indexrelid = i.indexrelid)
       END, 0)::bigint,
       CASE WHEN ic.relkind = 'I'
            THEN (SELECT coalesce(sum(pg_relation_size(t.relid)), 0) FROM pg_partition_tree(i.indexrelid) t WHERE t.isleaf)
            ELSE pg_relation_size(i.indexrelid)
       END::bigint
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace n ON n.oid = tc.relnamespace
JOIN pg_am am ON am.oid = ic.relam
WHERE n.nspname = ANY ($1) AND NOT ic.relispartition AND i.indisvalid
ORDER BY 2, 1`, cfg.Schemas)
	if err != nil {
		return fmt.Errorf("optimize: indexes: %w", err)
	}
	idx, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (optimizeIndex, error) {
		var x optimizeIndex
		var keys, opclass, opts string
		err := r.Scan(&x.name, &x.table, &x.partitioned, &x.unique, &x.constraint, &x.am,
			&keys, &opclass, &opts, &x.collation, &x.exprs, &x.pred, &x.scans, &x.bytes)
		x.keys, x.opclass, x.opts = strings.Fields(keys), strings.Fields(opclass), strings.Fields(opts)
		return x, err
	})
	if err != nil {
		return fmt.Errorf("optimize: indexes: %w", err)
	}

	// An invalid index is what a failed CREATE INDEX or REINDEX
	// CONCURRENTLY leaves: maintained on every write, used by no read.
	rows, err = pool.Query(ctx, `
SELECT format('%I.%I', n.nspname, ic.relname), format('%I.%I', n.nspname, tc.relname), ic.relkind = 'I'
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace n ON n.oid = tc.relnamespace
WHERE n.nspname = ANY ($1) AND NOT i.indisvalid
ORDER BY 1`, cfg.Schemas)
	if err != nil {
		return fmt.Errorf("optimize: invalid indexes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, table string
		var partitioned bool
		if err := rows.Scan(&name, &table, &partitioned); err != nil {
			return fmt.Errorf("optimize: invalid indexes: %w", err)
		}
		f := Finding{Kind: FindingInvalidIndex, Table: table, Index: name, Detail: "invalid: a CREATE INDEX or REINDEX CONCURRENTLY failed",
			Recommendation: fmt.Sprintf("DROP INDEX CONCURRENTLY %s, then rebuild it if it is needed", name)}
		if partitioned {
			f.Detail = "partitioned index not valid: some partition lacks its index"
			f.Recommendation = "create the missing partitions' indexes and ALTER INDEX ... ATTACH PARTITION them"
		}
		rep.Findings = append(rep.Findings, f)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("optimize: invalid indexes: %w", err)
	}

	redundant := map[string]bool{}
	for i := range idx {
		for j := range idx {
			a, b := idx[i], idx[j]
			if i == j || a.table != b.table || redundant[b.name] {
				continue
			}
			if why := optimizeCovers(b, a, j < i); why != "" {
				redundant[a.name] = true
				rep.Findings = append(rep.Findings, Finding{
					Kind: FindingDuplicateIndex, Table: a.table, Index: a.name,
					Detail:         fmt.Sprintf("%s %s (%s)", why, b.name, optimizeBytes(a.bytes)),
					Recommendation: fmt.Sprintf("DROP INDEX %s (check no query relies on its exact definition first)", a.name),
				})
				break
			}
		}
	}
	if !rep.UnusedChecked {
		return nil
	}
	for _, x := range idx {
		if x.scans > 0 || x.unique || x.constraint || redundant[x.name] {
			continue
		}
		detail := fmt.Sprintf("no scans since %s (%s)", rep.StatsSince.UTC().Format(time.RFC3339), optimizeBytes(x.bytes))
		if x.partitioned {
			detail = "partitioned index: " + detail + " over all partitions"
		}
		rep.Findings = append(rep.Findings, Finding{
			Kind: FindingUnusedIndex, Table: x.table, Index: x.name, Detail: detail,
			Recommendation: fmt.Sprintf("DROP INDEX %s if no rare job (reports, erasure) needs it", x.name),
		})
	}
	return nil
}

// optimizeCovers says why index keep makes index drop redundant, or ""
// when it does not. Of two identical indexes the one listed first is kept,
// unless only the other backs a constraint; a unique or constraint index is
// never the redundant one of a pair that differs in that.
func optimizeCovers(keep, drop optimizeIndex, keepFirst bool) string {
	if keep.am != drop.am || keep.exprs != drop.exprs || keep.pred != drop.pred ||
		drop.constraint || (drop.unique && !keep.unique) {
		return ""
	}
	if slices.Equal(keep.keys, drop.keys) && slices.Equal(keep.opclass, drop.opclass) &&
		slices.Equal(keep.opts, drop.opts) && keep.collation == drop.collation {
		if drop.unique == keep.unique && !keep.constraint && !keepFirst {
			return ""
		}
		return "same definition as"
	}
	// A btree on (x, y) serves every search a btree on (x) does, unless the
	// shorter one is unique (it enforces something) or has expressions.
	if keep.am != "btree" || drop.unique || keep.exprs != "" || len(drop.keys) >= len(keep.keys) {
		return ""
	}
	n := len(drop.keys)
	if slices.Equal(keep.keys[:n], drop.keys) && slices.Equal(keep.opclass[:n], drop.opclass) && slices.Equal(keep.opts[:n], drop.opts) {
		return "a leading prefix of"
	}
	return ""
}

// optimizeLeaf is one index with storage (relkind 'i'), a partition's or a
// plain table's.
type optimizeLeaf struct {
	oid          uint32
	name, table  string
	bytes, pages int64
	tuples       float64
	fillfactor   int
	width        *float64
	owned        bool // the current role may reindex it
}

func analyzeBloat(ctx context.Context, pool *pgxpool.Pool, cfg OptimizeConfig, rep *IndexReport) error {
	rows, err := pool.Query(ctx, `
SELECT ic.oid, format('%I.%I', n.nspname, ic.relname), format('%I.%I', n.nspname, tc.relname),
       pg_relation_size(ic.oid), pg_relation_size(ic.oid) / current_setting('block_size')::bigint,
       ic.reltuples::float8,
       pg_has_role(tc.relowner, 'USAGE'),
       coalesce((SELECT substr(o, 12)::int FROM unnest(ic.reloptions) o WHERE o LIKE 'fillfactor=%'), 90),
       -- average key width from pg_stats; NULL when a column has no statistics
       (SELECT CASE WHEN count(s.avg_width) = count(*) THEN sum(s.avg_width)::float8 END
          FROM unnest(i.indkey) k
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k
          LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = tc.relname
                              AND s.attname = a.attname AND NOT s.inherited)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace n ON n.oid = tc.relnamespace
JOIN pg_am am ON am.oid = ic.relam
WHERE n.nspname = ANY ($1) AND ic.relkind = 'i' AND am.amname = 'btree' AND i.indisvalid
  AND i.indexprs IS NULL AND pg_relation_size(ic.oid) >= $2
ORDER BY 2`, cfg.Schemas, cfg.BloatMinBytes)
	if err != nil {
		return fmt.Errorf("optimize: bloat: %w", err)
	}
	leaves, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (optimizeLeaf, error) {
		var x optimizeLeaf
		err := r.Scan(&x.oid, &x.name, &x.table, &x.bytes, &x.pages, &x.tuples, &x.owned, &x.fillfactor, &x.width)
		return x, err
	})
	if err != nil {
		return fmt.Errorf("optimize: bloat: %w", err)
	}

	statindex, err := optimizePgstattuple(ctx, pool)
	if err != nil {
		return err
	}
	rep.BloatMethod = BloatMethodEstimate
	if statindex != "" {
		rep.BloatMethod = BloatMethodPgstattuple
	}
	var blockSize float64
	if err := pool.QueryRow(ctx, `SELECT current_setting('block_size')::float8`).Scan(&blockSize); err != nil {
		return fmt.Errorf("optimize: block size: %w", err)
	}
	for _, x := range leaves {
		var ratio float64
		if statindex != "" {
			var density float64
			err := pool.QueryRow(ctx, `SELECT avg_leaf_density FROM `+statindex+`($1::oid::regclass)`, x.oid).Scan(&density)
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "42501" {
				// pgstatindex needs pg_stat_scan_tables: estimate instead
				statindex, rep.BloatMethod = "", BloatMethodEstimate
			} else if err != nil {
				return fmt.Errorf("optimize: pgstatindex %s: %w", x.name, err)
			} else {
				if math.IsNaN(density) {
					continue // no leaf pages with items yet
				}
				ratio = 1 - density/float64(x.fillfactor)
			}
		}
		if statindex == "" {
			if x.width == nil || x.tuples < 0 || x.pages < 2 {
				continue // no statistics to estimate from
			}
			ratio = optimizeEstimateBloat(x, blockSize)
		}
		if ratio < cfg.BloatRatio {
			continue
		}
		f := Finding{
			Kind: FindingBloatedIndex, Table: x.table, Index: x.name,
			Detail: fmt.Sprintf("about %.0f%% of %s wasted (%s)", 100*ratio, optimizeBytes(x.bytes), rep.BloatMethod),
		}
		// Every index here has relkind 'i': rebuilding it concurrently
		// touches one partition's (or one plain table's) index only. Only
		// the table's owner may, and no function can lend that right
		// (CONCURRENTLY refuses to run inside one).
		sql := "REINDEX INDEX CONCURRENTLY " + x.name
		if x.owned {
			f.Action = &Action{Kind: ActionReindex, Target: x.name, SQL: sql}
		} else {
			f.Recommendation = sql + " as the table's owner (the role that ran migrate)"
		}
		rep.Findings = append(rep.Findings, f)
	}
	return nil
}

// optimizeEstimateBloat compares the index's pages with what its tuples
// need: per tuple an 8-byte header plus the keys' average width, aligned to
// 8, plus a 4-byte line pointer; per page 24 bytes of header and 16 of
// btree special space, filled to fillfactor; plus the meta page. Internal
// pages are ignored (about 1%), so the estimate leans low.
func optimizeEstimateBloat(x optimizeLeaf, blockSize float64) float64 {
	tuple := math.Ceil((8+*x.width)/8)*8 + 4
	perPage := math.Floor((blockSize - 24 - 16) * float64(x.fillfactor) / 100 / tuple)
	expected := math.Ceil(x.tuples/perPage) + 1
	return math.Max(0, 1-expected/float64(x.pages))
}

// optimizePgstattuple returns the qualified name of pgstatindex when the
// pgstattuple extension is installed, else "".
func optimizePgstattuple(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var schema *string
	err := pool.QueryRow(ctx, `SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		WHERE e.extname = 'pgstattuple'`).Scan(&schema)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("optimize: pgstattuple: %w", err)
	}
	return pgx.Identifier{*schema, "pgstatindex"}.Sanitize(), nil
}

func analyzeTables(ctx context.Context, pool *pgxpool.Pool, cfg OptimizeConfig, rep *IndexReport) error {
	// Partitioned parents have no counters of their own: their live rows
	// and last changes are their partitions'.
	rows, err := pool.Query(ctx, `
SELECT format('%I.%I', s.schemaname, s.relname), c.relkind = 'p',
       CASE WHEN c.relkind = 'p'
            THEN (SELECT coalesce(sum(p.n_live_tup), 0) FROM pg_partition_tree(c.oid) t
                  JOIN pg_stat_all_tables p ON p.relid = t.relid WHERE t.isleaf)
            ELSE s.n_live_tup END::bigint,
       s.n_mod_since_analyze, s.seq_scan, coalesce(s.seq_tup_read, 0), coalesce(s.idx_scan, 0),
       greatest(s.last_analyze, s.last_autoanalyze),
       CASE WHEN c.relkind = 'p'
            THEN (SELECT max(greatest(p.last_autoanalyze, p.last_analyze, p.last_autovacuum)) FROM pg_partition_tree(c.oid) t
                  JOIN pg_stat_all_tables p ON p.relid = t.relid WHERE t.isleaf)
       END,
       CASE WHEN c.relkind = 'p'
            THEN (SELECT coalesce(sum(p.n_mod_since_analyze), 0) FROM pg_partition_tree(c.oid) t
                  JOIN pg_stat_all_tables p ON p.relid = t.relid WHERE t.isleaf)
            ELSE 0 END::bigint
FROM pg_stat_all_tables s
JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = ANY ($1) AND (c.relkind = 'r' OR c.relkind = 'p' AND NOT c.relispartition)
ORDER BY 1`, cfg.Schemas)
	if err != nil {
		return fmt.Errorf("optimize: tables: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			table                            string
			parent                           bool
			live, mods, seq, seqRead, idxScn int64
			analyzed, leafChanged            *time.Time
			leafMods                         int64
		)
		if err := rows.Scan(&table, &parent, &live, &mods, &seq, &seqRead, &idxScn, &analyzed, &leafChanged, &leafMods); err != nil {
			return fmt.Errorf("optimize: tables: %w", err)
		}
		analyze := &Action{Kind: ActionAnalyze, Target: table, SQL: "ANALYZE " + table}
		switch {
		case parent && live > 0 && analyzed == nil:
			rep.Findings = append(rep.Findings, Finding{Kind: FindingStaleStatistics, Table: table, Action: analyze,
				Detail: fmt.Sprintf("partitioned table never analysed (autovacuum does not analyse parents); %d live rows in its partitions", live)})
		case parent && live > 0 && rep.GeneratedAt.Sub(*analyzed) > cfg.StaleParentAge &&
			(leafMods > 0 || (leafChanged != nil && leafChanged.After(*analyzed))):
			rep.Findings = append(rep.Findings, Finding{Kind: FindingStaleStatistics, Table: table, Action: analyze,
				Detail: fmt.Sprintf("partitioned table last analysed %s ago while its partitions changed", rep.GeneratedAt.Sub(*analyzed).Round(time.Minute))})
		case !parent && mods > 0 && mods >= cfg.StaleMinMods &&
			(analyzed == nil || float64(mods) >= cfg.StaleModRatio*float64(live)):
			when := "never analysed"
			if analyzed != nil {
				when = "since the last ANALYZE"
			}
			rep.Findings = append(rep.Findings, Finding{Kind: FindingStaleStatistics, Table: table, Action: analyze,
				Detail: fmt.Sprintf("%d rows changed %s, %d live", mods, when, live)})
		}
		if !parent && live >= cfg.SeqScanMinRows && seq >= cfg.SeqScanMinScans && seq > idxScn {
			rep.Findings = append(rep.Findings, Finding{Kind: FindingSeqScanHeavy, Table: table,
				Detail:         fmt.Sprintf("%d sequential scans reading %d rows on average, %d index scans, %d live rows", seq, seqRead/seq, idxScn, live),
				Recommendation: "find the statements that scan it (pg_stat_statements) and index the columns they filter on"})
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("optimize: tables: %w", err)
	}
	return nil
}

// analyzeStatements reports slow statements from pg_stat_statements of
// this database by queryid: PostgreSQL keeps constants of utility
// statements in the texts, so the texts stay in the database.
func analyzeStatements(ctx context.Context, pool *pgxpool.Pool, cfg OptimizeConfig, rep *IndexReport) error {
	stmts, status, err := SlowStatements(ctx, pool, cfg.SlowQuery, cfg.SlowQueryMinCalls, 20)
	if err != nil {
		return err
	}
	rep.Statements = status
	for _, s := range stmts {
		rep.Findings = append(rep.Findings, Finding{
			Kind:           FindingSlowQuery,
			Detail:         fmt.Sprintf("queryid %d: %d calls, mean %.1f ms, total %.0f ms", s.QueryID, s.Calls, s.MeanMillis, s.TotalMillis),
			Recommendation: "read its text in pg_stat_statements by queryid, EXPLAIN (ANALYZE, BUFFERS) it with representative parameters, index its filter columns or narrow it",
		})
	}
	return nil
}

// SlowStatement is one statement of pg_stat_statements whose mean
// execution time is over a threshold.
type SlowStatement struct {
	QueryID     int64   `json:"queryid"`
	Calls       int64   `json:"calls"`
	MeanMillis  float64 `json:"mean_ms"`
	TotalMillis float64 `json:"total_ms"`
}

// The statuses SlowStatements returns besides a read error.
const (
	StatementsAvailable    = "available"
	StatementsNotInstalled = "not installed"
	StatementsNotLoaded    = "installed but not loaded (add pg_stat_statements to shared_preload_libraries)"
)

// SlowStatements returns up to limit statements of the current database
// whose mean execution time is at least threshold over at least minCalls
// calls, slowest first, and whether pg_stat_statements could be read:
// when it is not installed or not preloaded the list is empty and status
// says so; only other failures are errors.
func SlowStatements(ctx context.Context, pool *pgxpool.Pool, threshold time.Duration, minCalls int64, limit int) (stmts []SlowStatement, status string, err error) {
	var schema *string
	err = pool.QueryRow(ctx, `SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		WHERE e.extname = 'pg_stat_statements'`).Scan(&schema)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, StatementsNotInstalled, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("pg_stat_statements: %w", err)
	}
	rows, err := pool.Query(ctx, `SELECT queryid, calls, mean_exec_time, total_exec_time
		FROM `+pgx.Identifier{*schema, "pg_stat_statements"}.Sanitize()+`
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND mean_exec_time >= $1 AND calls >= $2 AND queryid IS NOT NULL
		ORDER BY mean_exec_time DESC LIMIT $3`,
		float64(threshold)/float64(time.Millisecond), minCalls, limit)
	if err == nil {
		stmts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (SlowStatement, error) {
			var s SlowStatement
			err := r.Scan(&s.QueryID, &s.Calls, &s.MeanMillis, &s.TotalMillis)
			return s, err
		})
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55000" {
		return nil, StatementsNotLoaded, nil
	}
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return nil, "not readable by this role (grant pg_read_all_stats)", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("pg_stat_statements: %w", err)
	}
	return stmts, StatementsAvailable, nil
}

// ErrPartitionedIndex is returned by ApplyAction for a reindex of a
// partitioned index: REINDEX CONCURRENTLY on it would rebuild every
// partition's index in one long command, which the optimiser never does.
var ErrPartitionedIndex = errors.New("refusing REINDEX CONCURRENTLY on a partitioned index: reindex its partitions' indexes one at a time")

// ErrNotOwner is returned by ApplyAction for an action PostgreSQL lets
// only the relation's owner run (REINDEX; ANALYZE outside schema audit,
// where audit.analyze_table does not lend the owner's right), when the
// role is not the owner: the worker's role (audit_maintainer) owns nothing.
// The action stays a recommendation for `auditworker optimize apply` run
// as the owner.
var ErrNotOwner = errors.New("needs the owner of the table: run `auditworker optimize apply` as the owner")

// ApplyAction runs one safe action. The target is looked up in the
// catalog first: an analyze needs a table, a reindex an index with storage
// (relkind 'i'), never a partitioned one ('I', ErrPartitionedIndex); an
// action only the owner may run and the role is not the owner of is
// refused with ErrNotOwner before anything runs. REINDEX CONCURRENTLY
// refuses to run in a transaction block, so it goes out alone, in
// autocommit.
func ApplyAction(ctx context.Context, pool *pgxpool.Pool, a Action) error {
	var oid uint32
	var name, kind string
	var inAudit, owner bool
	err := pool.QueryRow(ctx, `SELECT c.oid, format('%I.%I', n.nspname, c.relname), c.relkind::text, n.nspname = 'audit',
			pg_has_role(current_user, c.relowner, 'USAGE')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`, a.Target).
		Scan(&oid, &name, &kind, &inAudit, &owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s %s: no such relation", a.Kind, a.Target)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", a.Kind, a.Target, err)
	}
	switch {
	case !owner && a.Kind == ActionReindex && kind == "i", !owner && a.Kind == ActionAnalyze && !inAudit:
		return fmt.Errorf("%s %s: %w", a.Kind, a.Target, ErrNotOwner)
	case a.Kind == ActionAnalyze && (kind == "r" || kind == "p"):
		if inAudit {
			// audit.analyze_table lends the owner's right to the worker
			_, err = pool.Exec(ctx, `SELECT audit.analyze_table($1::oid::regclass)`, oid)
		} else {
			_, err = pool.Exec(ctx, `ANALYZE `+name)
		}
	case a.Kind == ActionReindex && kind == "I":
		return fmt.Errorf("reindex %s: %w", a.Target, ErrPartitionedIndex)
	case a.Kind == ActionReindex && kind == "i":
		// Exec without arguments uses the simple protocol: one statement,
		// no transaction block around it.
		_, err = pool.Exec(ctx, `REINDEX INDEX CONCURRENTLY `+name)
	case a.Kind == ActionAnalyze || a.Kind == ActionReindex:
		return fmt.Errorf("%s %s: wrong kind of relation (%s)", a.Kind, a.Target, kind)
	default:
		return fmt.Errorf("action %q: not a safe action", a.Kind)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", a.Kind, a.Target, err)
	}
	return nil
}

func optimizeBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
