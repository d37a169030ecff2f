// Package doctor compares a live auditdb schema with the one its migrations
// make, and names every difference: tables and views, functions with their
// SECURITY DEFINER and search_path, triggers (the integrity and flush
// triggers on every partition too), the grants of auditdb's four roles,
// and the applied migrations with their checksums.
//
// The expected schema is expected_schema.json, made from a freshly migrated
// database by `go test ./internal/doctor -run TestExpectedSchema -update`;
// the same test fails while the file is stale, so a new step that changes
// the schema comes with its expectation. Run-time switches (the
// pseudonymisation and HIPAA triggers) and partitions, which come and go,
// are checked by rule instead of by list.
package doctor

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	auditsql "github.com/auditdb/auditdb/sql"
)

// Schema is a schema as sorted lines per kind, as the catalog queries of
// sql/queries/doctor.sql print them.
type Schema struct {
	Tables    []string `json:"tables"`
	Functions []string `json:"functions"`
	Triggers  []string `json:"triggers"`
	Grants    []string `json:"grants"`
}

//go:embed expected_schema.json
var expectedJSON []byte

// Expected returns the schema the migrations make.
func Expected() (Schema, error) {
	var s Schema
	if err := json.Unmarshal(expectedJSON, &s); err != nil {
		return s, fmt.Errorf("doctor: expected schema: %w", err)
	}
	return s, nil
}

// Difference is one way the live schema differs from the expected one.
type Difference struct {
	// Check is the kind: table, function, trigger, grant, partition,
	// migration.
	Check string `json:"check"`
	// Object names what differs, e.g. "audit.audit_log_2026_12".
	Object string `json:"object"`
	// Problem says how: "missing", "unexpected", "lacks trigger ...".
	Problem string `json:"problem"`
}

// Report is what Check found.
type Report struct {
	Differences []Difference `json:"differences"`
	// Checked counts what was compared, per check.
	Checked map[string]int `json:"checked"`
}

// OK reports whether the schema is as expected.
func (r *Report) OK() bool { return len(r.Differences) == 0 }

// Querier is a pool, a connection or a transaction.
type Querier interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}

// DB is a pool or a connection: the catalog is read in one read-only
// transaction whose search_path is pg_catalog only, so that every name
// prints schema-qualified whatever the role's search_path.
type DB interface {
	BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
}

func inCatalogTx(ctx context.Context, db DB, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, db, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, querySearchPath); err != nil {
			return fmt.Errorf("doctor: %w", err)
		}
		return fn(tx)
	})
}

var (
	queryTables     = auditsql.MustQuery("SchemaTablesList")
	queryFunctions  = auditsql.MustQuery("SchemaFunctionsList")
	queryTriggers   = auditsql.MustQuery("SchemaTriggersList")
	queryGrants     = auditsql.MustQuery("SchemaGrantsList")
	queryPartitions = auditsql.MustQuery("SchemaPartitionTriggersMissing")
	queryMigrations = auditsql.MustQuery("SchemaMigrationsList")
	querySearchPath = auditsql.MustQuery("SchemaSearchPathCatalogOnly")
)

// Live reads the schema of the database behind db.
func Live(ctx context.Context, db DB) (s Schema, err error) {
	err = inCatalogTx(ctx, db, func(tx pgx.Tx) error {
		s, err = live(ctx, tx)
		return err
	})
	return s, err
}

func live(ctx context.Context, q Querier) (Schema, error) {
	var s Schema
	for _, l := range []struct {
		into *[]string
		sql  string
	}{{&s.Tables, queryTables}, {&s.Functions, queryFunctions}, {&s.Triggers, queryTriggers}, {&s.Grants, queryGrants}} {
		lines, err := lines(ctx, q, l.sql)
		if err != nil {
			return s, err
		}
		*l.into = lines
	}
	return s, nil
}

func lines(ctx context.Context, q Querier, sql string, args ...any) ([]string, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("doctor: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("doctor: %w", err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// Check compares the live schema behind db with the expected one and the
// applied migrations with the embedded steps.
func Check(ctx context.Context, db DB) (rep *Report, err error) {
	err = inCatalogTx(ctx, db, func(tx pgx.Tx) error {
		rep, err = check(ctx, tx)
		return err
	})
	return rep, err
}

func check(ctx context.Context, q Querier) (*Report, error) {
	want, err := Expected()
	if err != nil {
		return nil, err
	}
	got, err := live(ctx, q)
	if err != nil {
		return nil, err
	}
	rep := &Report{Differences: []Difference{}, Checked: map[string]int{}}
	for _, c := range []struct {
		check     string
		want, got []string
	}{{"table", want.Tables, got.Tables}, {"function", want.Functions, got.Functions},
		{"trigger", want.Triggers, got.Triggers}, {"grant", want.Grants, got.Grants}} {
		rep.Checked[c.check] = len(c.want)
		rep.Differences = append(rep.Differences, compare(c.check, c.want, c.got)...)
	}

	parts, err := lines(ctx, q, queryPartitions)
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		rep.Differences = append(rep.Differences, Difference{Check: "partition", Object: objectOf(p), Problem: problemOf(p)})
	}
	rep.Checked["partition"] = -1 // by rule, every partition

	migs, err := migrations(ctx, q)
	if err != nil {
		return nil, err
	}
	rep.Checked["migration"] = len(migs.steps)
	rep.Differences = append(rep.Differences, migs.diffs...)
	return rep, nil
}

// compare names what want has that got lacks ("missing") and the reverse
// ("unexpected"); a line's object is before ": " or " (" when it has one.
func compare(check string, want, got []string) []Difference {
	var out []Difference
	for _, w := range want {
		if !slices.Contains(got, w) {
			out = append(out, Difference{Check: check, Object: w, Problem: "missing"})
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			out = append(out, Difference{Check: check, Object: g, Problem: "unexpected"})
		}
	}
	return out
}

func objectOf(line string) string {
	for i := 0; i+1 < len(line); i++ {
		if line[i] == ':' && line[i+1] == ' ' {
			return line[:i]
		}
	}
	return line
}

func problemOf(line string) string {
	o := objectOf(line)
	if len(o)+2 <= len(line) {
		return line[len(o)+2:]
	}
	return line
}

type migrationCheck struct {
	steps []auditsql.Step
	diffs []Difference
}

func migrations(ctx context.Context, q Querier) (migrationCheck, error) {
	steps, err := auditsql.Steps()
	if err != nil {
		return migrationCheck{}, err
	}
	m := migrationCheck{steps: steps}
	rows, err := q.Query(ctx, queryMigrations)
	if err != nil {
		return m, fmt.Errorf("doctor: applied migrations: %w", err)
	}
	type applied struct {
		name, sum string
	}
	got := map[int]applied{}
	var (
		v         int
		name, sum string
	)
	if _, err := pgx.ForEachRow(rows, []any{&v, &name, &sum}, func() error {
		got[v] = applied{name, sum}
		return nil
	}); err != nil {
		return m, fmt.Errorf("doctor: applied migrations: %w", err)
	}
	known := map[int]bool{}
	for _, s := range steps {
		known[s.Version] = true
		obj := fmt.Sprintf("step %04d (%s)", s.Version, s.Path)
		a, ok := got[s.Version]
		switch {
		case !ok:
			m.diffs = append(m.diffs, Difference{Check: "migration", Object: obj, Problem: "not applied: run auditworker migrate"})
		case a.sum != s.Checksum():
			m.diffs = append(m.diffs, Difference{Check: "migration", Object: obj,
				Problem: fmt.Sprintf("applied with checksum %.12s, the step's text has %.12s: a released step changed", a.sum, s.Checksum())})
		}
	}
	for v, a := range got {
		if !known[v] {
			m.diffs = append(m.diffs, Difference{Check: "migration", Object: fmt.Sprintf("step %04d (%s)", v, a.name),
				Problem: "applied but unknown to this auditworker: a newer version migrated this database"})
		}
	}
	slices.SortFunc(m.diffs, func(a, b Difference) int {
		if a.Object < b.Object {
			return -1
		}
		if a.Object > b.Object {
			return 1
		}
		return 0
	})
	return m, nil
}
