package workers

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

// queryFiles hold named queries, one block per "-- name: X" line, so that
// the SQL is reviewable as SQL.
//
//go:embed queries/*.sql
var queryFiles embed.FS

var queries = loadQueries()

func loadQueries() map[string]string {
	m := map[string]string{}
	paths, err := fs.Glob(queryFiles, "queries/*.sql")
	if err != nil {
		panic(err)
	}
	for _, p := range paths {
		b, err := queryFiles.ReadFile(p)
		if err != nil {
			panic(err)
		}
		name := ""
		for _, line := range strings.SplitAfter(string(b), "\n") {
			if n, ok := strings.CutPrefix(strings.TrimSpace(line), "-- name:"); ok {
				name = strings.TrimSpace(n)
				if _, dup := m[name]; dup {
					panic(fmt.Sprintf("workers: query %s defined twice (%s)", name, p))
				}
				m[name] = ""
				continue
			}
			if name != "" {
				m[name] += line
			}
		}
	}
	return m
}

// query returns the named query; a missing name is a programming error.
func query(name string) string {
	q, ok := queries[name]
	if !ok || strings.TrimSpace(q) == "" {
		panic("workers: no query named " + name)
	}
	return q
}

// Queries kept as whole .sql files (STYLE: SQL is reviewable as SQL).
var (
	//go:embed queries/archive_rows_retention_end.sql
	archiveRowsRetentionEndSQL string
)
