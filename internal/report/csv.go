package report

import (
	"encoding/csv"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// writeCSV writes the main table of r as CSV: a header of column keys, then
// one record per row. Summary, sections and notes are not in the CSV (it
// holds one table); the JSON and HTML formats carry them.
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
	cw.Flush()
	return cw.Error()
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
