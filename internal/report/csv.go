package report

import (
	"encoding/csv"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// writeCSV writes the main table of r as CSV: a header of column keys, then
// one record per row, then two trailer records, as every format ends with
// the integrity status: ["# generated_at", time] and ["# integrity",
// status line], padded with empty fields to the table's width so that
// every record has the same number of fields. A first field starting with
// "#" marks them (CSVTrailerGeneratedAt, CSVTrailerIntegrity); no data row
// can start so, since the first column of every report is a time or a
// number. Summary, sections and notes are not in the CSV (it holds one
// table); the JSON and HTML formats carry them.
//
// A text value whose first character other than white space is = + - @,
// or their full-width forms, or that starts with a tab or carriage return,
// is written with a leading apostrophe, so that a spreadsheet opening the
// file shows it instead of evaluating it as a formula (CSV injection,
// OWASP). Numbers and times are never text values here, so negative
// numbers stay numbers.
func (r *Report) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	header := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		header[i] = c.Key
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	record := make([]string, len(r.Columns))
	for _, row := range r.Rows {
		for i, v := range row {
			s := text(v)
			if _, isText := v.(string); isText {
				s = DefuseFormula(s)
			}
			record[i] = s
		}
		if err := cw.Write(record); err != nil {
			return err
		}
	}
	for _, t := range [][2]string{{CSVTrailerGeneratedAt, FormatTime(r.GeneratedAt)}, {CSVTrailerIntegrity, r.Integrity}} {
		if err := cw.Write(trailer(t[0], t[1], len(r.Columns))); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// The first fields of the CSV trailer records.
const (
	CSVTrailerGeneratedAt = "# generated_at"
	CSVTrailerIntegrity   = "# integrity"
)

// trailer is a trailer record of width fields (two at least; one-column
// tables get "name: value" in one field).
func trailer(name, value string, width int) []string {
	if width < 2 {
		return []string{name + ": " + value}
	}
	rec := make([]string, width)
	rec[0], rec[1] = name, value
	return rec
}

// DefuseFormula prefixes s with an apostrophe when a spreadsheet could read
// it as a formula. Leading spaces are skipped because some spreadsheets
// trim them before looking for the formula sign.
func DefuseFormula(s string) string {
	if strings.HasPrefix(s, "\t") || strings.HasPrefix(s, "\r") {
		return "'" + s
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsSpace(r) }); i >= 0 {
		switch r, _ := utf8.DecodeRuneInString(s[i:]); r {
		case '=', '+', '-', '@', '\uff1d', '\uff0b', '\uff0d', '\uff20':
			return "'" + s
		}
	}
	return s
}
