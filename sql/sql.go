// Package auditsql carries auditdb's SQL: one ordered set of files that is
// both the migrations `auditworker migrate` applies and the script of
// `CREATE EXTENSION auditdb`.
//
// Every file's name starts with a four-digit step number, wherever it lives
// (sql/, sql/functions/, sql/triggers/); the steps run in that order. Steps
// are append-only: once released, a step's text never changes, and a change
// is a new step.
package auditsql

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed *.sql functions/*.sql triggers/*.sql
var files embed.FS

// ExtensionVersion is the version of the extension script that the steps
// make up (auditdb.control's default_version).
const ExtensionVersion = "0.1.0"

// Step is one migration: a numbered SQL file.
type Step struct {
	Version int    // the file's four-digit number
	Name    string // the file name without the number and extension, e.g. "schema"
	Path    string // path inside sql/, e.g. "triggers/0003_insert_trigger.sql"
	SQL     string
}

// Checksum is the hex SHA-256 of the step's text, recorded when it is
// applied so that a changed released step is noticed.
func (s Step) Checksum() string {
	sum := sha256.Sum256([]byte(s.SQL))
	return hex.EncodeToString(sum[:])
}

// Steps returns every step in order.
func Steps() ([]Step, error) {
	var steps []Step
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".sql" {
			return err
		}
		base := path.Base(p)
		num, name, ok := strings.Cut(strings.TrimSuffix(base, ".sql"), "_")
		version, convErr := strconv.Atoi(num)
		if !ok || len(num) != 4 || convErr != nil {
			return fmt.Errorf("sql file %s: name must start with a four-digit step number and '_'", p)
		}
		text, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		steps = append(steps, Step{Version: version, Name: name, Path: p, SQL: string(text)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(steps, func(i, j int) bool { return steps[i].Version < steps[j].Version })
	for i := 1; i < len(steps); i++ {
		if steps[i].Version == steps[i-1].Version {
			return nil, fmt.Errorf("sql files %s and %s share step number %04d", steps[i-1].Path, steps[i].Path, steps[i].Version)
		}
	}
	return steps, nil
}

// ExtensionScript returns the `auditdb--<version>.sql` script: every step
// in order.
func ExtensionScript() (string, error) {
	steps, err := Steps()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("-- auditdb " + ExtensionVersion + ": generated from sql/ by `auditworker extension-script`; do not edit.\n")
	b.WriteString("\\echo Use \"CREATE EXTENSION auditdb\" to load this file. \\quit\n")
	for _, s := range steps {
		fmt.Fprintf(&b, "\n-- ==== step %04d: %s ====\n%s", s.Version, s.Path, s.SQL)
	}
	return b.String(), nil
}
