package report

import (
	_ "embed"
	"html/template"
	"io"
	"strings"
	"time"
	"unicode"
)

//go:embed report.html.tmpl
var htmlSource string

// page is html/template's auto-escaping template: every value is escaped
// for where it lands (element text, attribute), so PHI-bearing values
// cannot inject markup or script.
var page = template.Must(template.New("report").Parse(htmlSource))

// HashShownChars is how many characters of a hash (hex of 32 digits or
// more) an HTML report shows in a table; the full value is in the cell's
// title (shown on hover) and in the report's appendix of full values
// (which prints). Pseudonyms and erasure tokens show their prefix and 8
// hex digits, the same way.
const HashShownChars = 12

// hashMinLen is the shortest hex value shortened: 128 bits (the erasure
// token's 32 hex digits are part of a longer id, so they stay whole).
const hashMinLen = 32

type htmlCell struct {
	Text  string // what the cell shows
	Full  string // the full value when Text is shortened; else empty
	Ref   int    // the appendix entry's number when shortened
	Class string // "num", "time", "hash", "ident" or ""
	// Date and Clock split a time after its T, where it may wrap.
	Date, Clock string
}

type htmlField struct {
	Label string
	Value htmlCell
}

type htmlTable struct {
	Title   string
	Headers []htmlHeader
	Rows    [][]htmlCell
}

type htmlHeader struct {
	Label string
	Class string // "num" when the column holds numbers
}

// htmlFull is an entry of the appendix: a shortened value in full.
type htmlFull struct {
	Ref   int
	Where string // table, row and column, e.g. "Chains, chain 3: Head hash"
	Value string
}

type htmlPage struct {
	Title, Subtitle, Kind, GeneratedAt, Statement, Integrity string
	Verdict, VerdictClass, VerdictText                       string
	Parameters, Summary                                      []htmlField
	Main                                                     htmlTable
	Sections                                                 []htmlTable
	Notes                                                    []string
	Full                                                     []htmlFull
}

// writeHTML writes r as one self-contained HTML page: inline CSS with a
// print stylesheet, no scripts, no external assets, so it can be archived
// or printed as it is. Hashes are shortened in tables (full in the title
// attribute and in an appendix, in monospace), headers wrap only between
// words, and a verdict (Report.Verdict) heads the page as a badge.
func (r *Report) writeHTML(w io.Writer) error {
	var full []htmlFull
	p := htmlPage{
		Title: r.Title, Subtitle: r.Subtitle, Kind: r.Kind, GeneratedAt: FormatTime(r.GeneratedAt),
		Statement: r.Statement, Integrity: r.Integrity, Verdict: r.Verdict, VerdictClass: verdictClass(r.Verdict),
		Notes: r.Notes,
	}
	// beside the badge, the statement need not repeat the verdict
	p.VerdictText = strings.TrimPrefix(r.Statement, "Verdict "+r.Verdict+". ")
	// appendix entries are numbered in the order the page shows them
	p.Parameters = htmlFields("Parameters", r.Parameters, &full)
	mainTitle := r.MainTitle
	if mainTitle == "" {
		mainTitle = "Events"
	}
	p.Main = htmlTableOf(mainTitle, r.Columns, r.Rows, &full)
	p.Summary = htmlFields("Summary", r.Summary, &full)
	for _, s := range r.Sections {
		p.Sections = append(p.Sections, htmlTableOf(s.Title, s.Columns, s.Rows, &full))
	}
	p.Full = full
	return page.Execute(w, p)
}

// verdictClass is the badge's CSS class: good, bad or warn.
func verdictClass(v string) string {
	switch v {
	case "":
		return ""
	case "INTACT":
		return "good"
	case "TAMPERED":
		return "bad"
	}
	return "warn"
}

func htmlFields(where string, fields []Field, full *[]htmlFull) []htmlField {
	out := make([]htmlField, len(fields))
	for i, f := range fields {
		out[i] = htmlField{Label: f.Label, Value: cellOf(f.Value, where+": "+f.Label, full)}
	}
	return out
}

func htmlTableOf(title string, cols []Column, rows [][]any, full *[]htmlFull) htmlTable {
	t := htmlTable{Title: title, Headers: make([]htmlHeader, len(cols)), Rows: make([][]htmlCell, len(rows))}
	for i, c := range cols {
		t.Headers[i] = htmlHeader{Label: c.Label}
		if len(rows) > 0 && numericColumn(rows, i) {
			t.Headers[i].Class = "num"
		}
	}
	for i, row := range rows {
		cells := make([]htmlCell, len(row))
		for j, v := range row {
			// the row's first value names it in the appendix (a time, an
			// id or a chain)
			where := title + ", " + cols[0].Label + " " + text(row[0]) + ": " + cols[j].Label
			cells[j] = cellOf(v, where, full)
		}
		t.Rows[i] = cells
	}
	return t
}

// numericColumn reports whether column i holds only integers (and NULLs),
// so that it is right-aligned.
func numericColumn(rows [][]any, i int) bool {
	seen := false
	for _, row := range rows {
		switch row[i].(type) {
		case nil:
		case int, int16, int32, int64:
			seen = true
		default:
			return false
		}
	}
	return seen
}

func cellOf(v any, where string, full *[]htmlFull) htmlCell {
	s := text(v)
	switch v.(type) {
	case int, int16, int32, int64:
		return htmlCell{Text: s, Class: "num"}
	case time.Time:
		// may break after the T on narrow pages, nowhere else
		date, clock, _ := strings.Cut(s, "T")
		return htmlCell{Text: s, Class: "time", Date: date + "T", Clock: clock}
	case string:
		if shown, ok := shortened(s); ok {
			ref := 0
			for _, f := range *full {
				if f.Value == s { // one entry per value
					ref = f.Ref
				}
			}
			if ref == 0 {
				ref = len(*full) + 1
				*full = append(*full, htmlFull{Ref: ref, Where: where, Value: s})
			}
			return htmlCell{Text: shown, Full: s, Ref: ref, Class: "hash"}
		}
		if isIdentifier(s) {
			return htmlCell{Text: s, Class: "ident"}
		}
	}
	return htmlCell{Text: s}
}

// identMaxLen is the longest value without spaces kept on one line:
// longer ones may wrap on narrow pages rather than push the table wider.
const identMaxLen = 24

// isIdentifier reports whether s reads as one identifier (patient-456,
// fhir.patient.read, 10.20.30.40): short, without white space, so that a
// line break inside it (after "patient-") would only mislead.
func isIdentifier(s string) bool {
	return s != "" && len(s) <= identMaxLen && !strings.ContainsFunc(s, unicode.IsSpace)
}

// keyedIDPrefixes start ids that are keyed hashes: write-time pseudonyms
// and erasure tokens (prefix and 32 hex digits).
var keyedIDPrefixes = []string{"psn_", "erased_"}

// shortened returns what a table shows of s when s is a hex digest
// (SHA-256, a MAC: only hex digits, at least hashMinLen of them) or a
// keyed id (a pseudonym or an erasure token): its first HashShownChars
// characters (after the prefix), and true.
func shortened(s string) (string, bool) {
	prefix := ""
	for _, p := range keyedIDPrefixes {
		if rest, ok := strings.CutPrefix(s, p); ok && len(rest) == hashMinLen {
			prefix, s = p, rest
			break
		}
	}
	if len(s) < hashMinLen || strings.Trim(s, "0123456789abcdefABCDEF") != "" {
		return "", false
	}
	n := HashShownChars
	if prefix != "" {
		n = 8 // the prefix says what it is; 8 hex digits tell ids apart
	}
	return prefix + s[:n] + "…", true
}
