package workers

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/subject"
	"github.com/auditdb/auditdb/internal/verifier"
)

// The plan of a retention run: which rows are due, and per chain the range
// a run archives (see the rules at the top of retention.go).

// RetentionPolicy is one active policy with the retention that applies to
// its rows of one classification.
type RetentionPolicy struct {
	Policy         string `json:"policy"`
	Classification string `json:"data_classification"`
	// PolicyClassification is the classification the policy is declared for.
	PolicyClassification string    `json:"policy_classification"`
	PolicyDays           int       `json:"policy_retention_days"`
	EffectiveDays        int       `json:"effective_retention_days"`
	Cutoff               time.Time `json:"cutoff"` // rows older than this are due
	RowsDue              int64     `json:"rows_due"`
	RowsArchivable       int64     `json:"rows_archivable_now"`
	RowsHeldBack         int64     `json:"rows_held_back"`
}

// ChainRetention is one chain's part of a plan.
type ChainRetention struct {
	ChainID int16 `json:"chain_id"`
	// ArchivedThrough is the last seq existing manifests cover (0: none).
	ArchivedThrough int64 `json:"archived_through"`
	// FirstSeq..LastSeq is what this plan archives; Rows == 0 means nothing.
	FirstSeq  int64  `json:"first_seq,omitempty"`
	LastSeq   int64  `json:"last_seq,omitempty"`
	Rows      int64  `json:"rows"`
	StartHash string `json:"-"`
	EndHash   string `json:"-"`
	// HeldBack counts due rows after LastSeq that wait for a row not yet due
	// (filled only by detailed plans).
	HeldBack int64 `json:"rows_held_back"`
	// StoppedBy says why the range ends where it does.
	StoppedBy string `json:"stopped_by,omitempty"`
}

// PartitionRetention is what a plan does to one partition.
type PartitionRetention struct {
	Partition   string `json:"partition"`
	Rows        int64  `json:"rows"`
	RowsCovered int64  `json:"rows_covered"`
	Droppable   bool   `json:"droppable"`
}

// RetentionPlan is what a run would archive now.
type RetentionPlan struct {
	At         time.Time            `json:"at"`
	Policies   []RetentionPolicy    `json:"policies"`
	Chains     []ChainRetention     `json:"chains"`
	Partitions []PartitionRetention `json:"partitions,omitempty"`
	// Pending are manifests whose rows are still present: an earlier run
	// stopped between sealing and removal; the next run removes them.
	Pending []integrity.ArchiveManifest `json:"pending_manifests"`
	// Unsealed lists archives in the sink that no manifest refers to: files
	// of runs that stopped before sealing. Their rows are still in audit_log
	// (and archived again by a later run), so they can be deleted.
	Unsealed []string `json:"unsealed_archives"`
	Rows     int64    `json:"rows"`
}

// PlanRetention computes what a run would archive now, without changing
// anything, with per-policy, per-chain and per-partition detail (this reads
// every row older than the shortest retention).
func (d *Deps) PlanRetention(ctx context.Context, cfg *RetentionConfig) (*RetentionPlan, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// everything a whole run would archive, over all its archives
	plan, err := d.plan(ctx, math.MaxInt64)
	if err != nil {
		return nil, err
	}
	if plan.Pending, err = pendingManifests(ctx, d.Pool); err != nil {
		return nil, err
	}
	if err := d.planDetail(ctx, plan); err != nil {
		return nil, err
	}
	// a plan only looks: it does not create the archive directory
	names, err := listArchivesIfAny(ctx, cfg.ArchiveSink)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	if plan.Unsealed, err = unsealedArchives(ctx, d.Pool, names); err != nil {
		return nil, err
	}
	return plan, nil
}

// unsealedArchives lists the sink's archives that no manifest names.
func unsealedArchives(ctx context.Context, q subject.Querier, names []string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT DISTINCT archive_uri FROM audit.archive_manifests`)
	if err != nil {
		return nil, fmt.Errorf("retention: archive manifests: %w", err)
	}
	uris, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("retention: archive manifests: %w", err)
	}
	sealed := map[string]bool{}
	for _, u := range uris {
		sealed[ArchiveNameFromURI(u)] = true
	}
	out := []string{}
	for _, n := range names {
		if !sealed[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// plan picks, per chain, the run of due rows after the covered prefix,
// limited to maxRows in all.
func (d *Deps) plan(ctx context.Context, maxRows int64) (*RetentionPlan, error) {
	q := d.Pool
	p := &RetentionPlan{Policies: []RetentionPolicy{}, Chains: []ChainRetention{}, Pending: []integrity.ArchiveManifest{}, Unsealed: []string{}}
	if err := q.QueryRow(ctx, `SELECT now()`).Scan(&p.At); err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	rows, err := q.Query(ctx, `SELECT policy_name, data_classification, retention_days FROM audit.retention_policies WHERE is_active ORDER BY policy_name`)
	if err != nil {
		return nil, fmt.Errorf("retention: policies: %w", err)
	}
	type pol struct {
		name, cls string
		days      int
	}
	pols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pol, error) {
		var x pol
		return x, r.Scan(&x.name, &x.cls, &x.days)
	})
	if err != nil {
		return nil, fmt.Errorf("retention: policies: %w", err)
	}
	longest := map[string]int{}
	for _, x := range pols {
		longest[x.cls] = max(longest[x.cls], x.days)
	}
	for _, x := range pols {
		for _, cls := range []string{"PUBLIC", "INTERNAL", "CONFIDENTIAL", "PHI"} {
			days := max(x.days, longest[cls])
			p.Policies = append(p.Policies, RetentionPolicy{Policy: x.name, Classification: cls, PolicyClassification: x.cls,
				PolicyDays: x.days, EffectiveDays: days, Cutoff: p.At.Add(-time.Duration(days) * 24 * time.Hour)})
		}
	}
	names, classes, cutoffs := policyArrays(p.Policies)

	mans, err := verifier.LoadArchiveManifests(ctx, q, "")
	if err != nil {
		return nil, err
	}
	rows, err = q.Query(ctx, `SELECT chain_id FROM audit.chain_heads ORDER BY chain_id`)
	if err != nil {
		return nil, fmt.Errorf("retention: chains: %w", err)
	}
	chains, err := pgx.CollectRows(rows, pgx.RowTo[int16])
	if err != nil {
		return nil, fmt.Errorf("retention: chains: %w", err)
	}
	budget := maxRows
	for _, id := range chains {
		c := ChainRetention{ChainID: id}
		g := integrity.Genesis(id)
		c.StartHash = hex.EncodeToString(g[:])
		for _, m := range mans {
			if m.ChainID != id {
				continue
			}
			if m.FirstSeq != c.ArchivedThrough+1 {
				c.StoppedBy = fmt.Sprintf("archive manifests of this chain are not contiguous at seq %d: nothing archived until that is looked into", m.FirstSeq)
				break
			}
			c.ArchivedThrough, c.StartHash = m.LastSeq, m.EndHash
		}
		if c.StoppedBy == "" && len(cutoffs) > 0 {
			if err := chainRange(ctx, q, &c, names, classes, cutoffs, budget); err != nil {
				return nil, err
			}
		}
		budget -= c.Rows
		p.Rows += c.Rows
		p.Chains = append(p.Chains, c)
	}
	return p, nil
}

// chainRange finds the due run of one chain after its covered prefix.
func chainRange(ctx context.Context, q subject.Querier, c *ChainRetention, names, classes []string, cutoffs []time.Time, budget int64) error {
	start := c.ArchivedThrough + 1
	var newest *int64
	if err := q.QueryRow(ctx, `SELECT max(chain_seq) FROM audit.audit_log WHERE chain_id = $1`, c.ChainID).Scan(&newest); err != nil {
		return fmt.Errorf("retention: chain %d: %w", c.ChainID, err)
	}
	if newest == nil || *newest <= start {
		c.StoppedBy = "newest row is kept"
		return nil
	}
	last := *newest - 1
	c.StoppedBy = "newest row is kept"
	if last-start+1 > budget {
		last = start + budget - 1
		c.StoppedBy = "rows per archive reached"
	}
	if last < start {
		return nil
	}
	// The first row not due, looked for only up to last: the scan walks the
	// (chain_id, chain_seq) index and costs what the archive will hold. A
	// row an active legal hold covers is never due: a hold forbids disposal.
	var notDue int64
	var notDueAt time.Time
	var notDuePolicy string
	var held bool
	err := q.QueryRow(ctx, `SELECT l.chain_seq, l."timestamp", l.retention_policy, h.held
		FROM audit.audit_log l, LATERAL (SELECT `+subject.RowHeld+` AS held) h
		WHERE l.chain_id = $1 AND l.chain_seq BETWEEN $2 AND $3
		  AND (h.held OR NOT EXISTS (SELECT 1 FROM unnest($4::text[], $5::text[], $6::timestamptz[]) e(policy, cls, cutoff)
		                             WHERE e.policy = l.retention_policy AND e.cls = l.data_classification AND l."timestamp" < e.cutoff))
		ORDER BY l.chain_seq LIMIT 1`, c.ChainID, start, last, names, classes, cutoffs).Scan(&notDue, &notDueAt, &notDuePolicy, &held)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("retention: chain %d: %w", c.ChainID, err)
	case held:
		last = notDue - 1
		c.StoppedBy = fmt.Sprintf("seq %d is under a legal hold", notDue)
	default:
		last = notDue - 1
		c.StoppedBy = fmt.Sprintf("seq %d (policy %s, %s) is not due yet", notDue, notDuePolicy, notDueAt.UTC().Format("2006-01-02"))
	}
	if last < start {
		return nil
	}
	if err := q.QueryRow(ctx, `SELECT hash FROM audit.audit_log WHERE chain_id = $1 AND chain_seq = $2 ORDER BY id LIMIT 1`,
		c.ChainID, last).Scan(&c.EndHash); err != nil {
		return fmt.Errorf("retention: chain %d seq %d: %w", c.ChainID, last, err)
	}
	c.FirstSeq, c.LastSeq, c.Rows = start, last, last-start+1
	return nil
}

// planDetail counts, per policy and chain, the rows due and how many of
// them this plan archives, and what happens to each old partition.
func (d *Deps) planDetail(ctx context.Context, p *RetentionPlan) error {
	if len(p.Policies) == 0 {
		return nil
	}
	var ids []int16
	var through, first, last []int64
	for _, c := range p.Chains {
		ids, through, first, last = append(ids, c.ChainID), append(through, c.ArchivedThrough), append(first, c.FirstSeq), append(last, c.LastSeq)
	}
	names, classes, cutoffs := policyArrays(p.Policies)
	// only rows older than the latest cutoff (the shortest retention) can be due
	latest := slices.MaxFunc(cutoffs, time.Time.Compare)
	rows, err := d.Pool.Query(ctx, `SELECT grouping(l.chain_id) = 0, coalesce(l.chain_id, 0), coalesce(l.retention_policy, ''),
			coalesce(l.data_classification, ''), count(*), count(*) FILTER (WHERE l.chain_seq BETWEEN c.first AND c.last)
		FROM audit.audit_log l
		JOIN unnest($1::text[], $2::text[], $3::timestamptz[]) e(policy, cls, cutoff)
		  ON e.policy = l.retention_policy AND e.cls = l.data_classification AND l."timestamp" < e.cutoff
		JOIN unnest($4::smallint[], $5::bigint[], $6::bigint[], $7::bigint[]) c(chain_id, through, first, last)
		  ON c.chain_id = l.chain_id AND l.chain_seq > c.through
		WHERE l."timestamp" < $8
		GROUP BY GROUPING SETS ((l.chain_id), (l.retention_policy, l.data_classification))`,
		names, classes, cutoffs, ids, through, first, last, latest)
	if err != nil {
		return fmt.Errorf("retention: plan: %w", err)
	}
	var (
		byChain          bool
		chain            int16
		policy, cls      string
		due, archivedNow int64
	)
	_, err = pgx.ForEachRow(rows, []any{&byChain, &chain, &policy, &cls, &due, &archivedNow}, func() error {
		if byChain {
			for i := range p.Chains {
				if p.Chains[i].ChainID == chain {
					p.Chains[i].HeldBack = due - archivedNow
				}
			}
			return nil
		}
		for i := range p.Policies {
			if rp := &p.Policies[i]; rp.Policy == policy && rp.Classification == cls {
				rp.RowsDue, rp.RowsArchivable, rp.RowsHeldBack = due, archivedNow, due-archivedNow
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("retention: plan: %w", err)
	}
	// a policy's own classification is always listed, other pairs only
	// when rows use them
	p.Policies = slices.DeleteFunc(p.Policies, func(rp RetentionPolicy) bool {
		return rp.RowsDue == 0 && rp.Classification != rp.PolicyClassification
	})

	covered := make([]int64, len(p.Chains))
	for i, c := range p.Chains {
		covered[i] = max(c.ArchivedThrough, c.LastSeq)
	}
	// Partitions starting before the latest cutoff may hold due rows; they
	// are read whole (up to the end of the last of them) through the parent
	// table, which is all the maintainer role may read.
	var bound time.Time
	if err := d.Pool.QueryRow(ctx, `SELECT coalesce(max(range_end), $1) FROM audit.partitions()
		WHERE NOT is_default AND range_start < $1`, latest).Scan(&bound); err != nil {
		return fmt.Errorf("retention: plan: partitions: %w", err)
	}
	rows, err = d.Pool.Query(ctx, `SELECT c.relname::text, count(*), count(*) FILTER (WHERE l.chain_seq <= v.through),
			coalesce(pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', false)
		FROM audit.audit_log l
		JOIN pg_class c ON c.oid = l.tableoid
		LEFT JOIN unnest($1::smallint[], $2::bigint[]) v(chain_id, through) ON v.chain_id = l.chain_id
		WHERE l."timestamp" < $3
		GROUP BY c.oid, c.relname ORDER BY c.relname`, ids, covered, bound)
	if err != nil {
		return fmt.Errorf("retention: plan: partitions: %w", err)
	}
	var (
		pr        PartitionRetention
		isDefault bool
	)
	_, err = pgx.ForEachRow(rows, []any{&pr.Partition, &pr.Rows, &pr.RowsCovered, &isDefault}, func() error {
		pr.Droppable = !isDefault && pr.Rows == pr.RowsCovered
		if pr.RowsCovered > 0 {
			p.Partitions = append(p.Partitions, pr)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("retention: plan: partitions: %w", err)
	}
	return nil
}

// policyArrays are the plan's (policy, classification, cutoff) triples as
// the three arrays the queries unnest.
func policyArrays(ps []RetentionPolicy) (names, classes []string, cutoffs []time.Time) {
	for _, rp := range ps {
		names, classes, cutoffs = append(names, rp.Policy), append(classes, rp.Classification), append(cutoffs, rp.Cutoff)
	}
	return names, classes, cutoffs
}

// pendingManifests returns manifests whose rows are still in audit_log.
func pendingManifests(ctx context.Context, q subject.Querier) ([]integrity.ArchiveManifest, error) {
	return verifier.LoadArchiveManifests(ctx, q, `WHERE EXISTS (SELECT 1 FROM audit.audit_log l
		WHERE l.chain_id = m.chain_id AND l.chain_seq BETWEEN m.first_seq AND m.last_seq)`)
}
