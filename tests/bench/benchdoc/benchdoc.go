// Package benchdoc holds what the benchmark programs agree on about
// BENCHMARKS.md.
package benchdoc

import (
	"fmt"
	"os"
	"strings"
)

// Marker is the line of BENCHMARKS.md after which sections come from other
// benchmarks than tests/bench (Go benchmarks, tests/bench/worker): tests/bench
// rewrites what is before it and keeps what is after it.
const Marker = "<!-- Sections below come from Go benchmarks named in each; make bench keeps them. -->"

// WriteSection puts section after the marker line of path, replacing an earlier
// section with the same heading (up to the next "## " heading).
func WriteSection(path, heading, section string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(old)
	m := strings.Index(doc, Marker)
	if m < 0 {
		return fmt.Errorf("%s has no marker line %q", path, Marker)
	}
	if i := strings.Index(doc[m:], heading+"\n"); i >= 0 {
		start := m + i
		end := len(doc)
		if j := strings.Index(doc[start+len(heading):], "\n## "); j >= 0 {
			end = start + len(heading) + j + 1
		}
		doc = doc[:start] + section + "\n" + doc[end:]
	} else {
		doc = strings.TrimRight(doc, "\n") + "\n\n" + section
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}
