package auditsql

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
	"sync"
)

// Queries are the statements the Go code runs, kept as reviewable SQL
// beside the schema (River keeps its own the same way, in dbsqlc/*.sql).
// Each file under queries/ holds named blocks:
//
//	-- name: SubjectPseudonymsResolvable
//	SELECT has_function_privilege(...);
//
// Names are entity first (the table or concept, then what is done), unique
// across files. A block runs to the next "-- name:" line; a trailing
// semicolon is dropped, so a block is one statement that pgx can prepare.
// They are not migration steps: the glob of Steps does not reach queries/.
//
//go:embed queries/*.sql
var queryFiles embed.FS

var (
	queriesOnce sync.Once
	queries     map[string]string
	queriesErr  error
)

func loadQueries() {
	queries = map[string]string{}
	queriesErr = fs.WalkDir(queryFiles, "queries", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		text, err := queryFiles.ReadFile(p)
		if err != nil {
			return err
		}
		var name string
		var body strings.Builder
		flush := func() error {
			if name == "" {
				return nil
			}
			q := strings.TrimSuffix(strings.TrimSpace(body.String()), ";")
			if q == "" {
				return fmt.Errorf("sql %s: query %s is empty", p, name)
			}
			if _, dup := queries[name]; dup {
				return fmt.Errorf("sql %s: query %s is defined twice", p, name)
			}
			queries[name] = q
			body.Reset()
			return nil
		}
		for _, line := range strings.SplitAfter(string(text), "\n") {
			if n, ok := strings.CutPrefix(strings.TrimSpace(line), "-- name:"); ok {
				if err := flush(); err != nil {
					return err
				}
				name = strings.TrimSpace(n)
				continue
			}
			if name != "" {
				body.WriteString(line)
			}
		}
		return flush()
	})
}

// Query returns the named query's text; an error when there is none.
func Query(name string) (string, error) {
	queriesOnce.Do(loadQueries)
	if queriesErr != nil {
		return "", queriesErr
	}
	q, ok := queries[name]
	if !ok {
		return "", fmt.Errorf("sql: no query named %s", name)
	}
	return q, nil
}

// MustQuery is Query for package-level variables: a missing name is a
// programming error, caught when the package is loaded (by any test of it).
func MustQuery(name string) string {
	q, err := Query(name)
	if err != nil {
		panic(err)
	}
	return q
}

// QueryNames lists every named query, for tests that prepare them all.
func QueryNames() []string {
	queriesOnce.Do(loadQueries)
	out := make([]string, 0, len(queries))
	for n := range queries {
		out = append(out, n)
	}
	return out
}
