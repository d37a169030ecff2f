package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// writeText writes r as aligned plain text for a terminal.
func (r *Report) writeText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, visible(r.Title))
	if r.Subtitle != "" {
		fmt.Fprintln(bw, visible(r.Subtitle))
	}
	fmt.Fprintln(bw)
	writeFields(bw, append([]Field{{Key: "generated_at", Label: "Generated", Value: r.GeneratedAt}}, r.Parameters...))
	fmt.Fprintln(bw)
	if r.Statement != "" {
		fmt.Fprintf(bw, "%s\n\n", visible(r.Statement))
	}
	writeTable(bw, r.Columns, r.Rows)
	if len(r.Summary) > 0 {
		fmt.Fprintln(bw, "\nSummary")
		writeFields(bw, r.Summary)
	}
	for _, s := range r.Sections {
		fmt.Fprintf(bw, "\n%s\n", visible(s.Title))
		writeTable(bw, s.Columns, s.Rows)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(bw, "\nNotes")
		for _, n := range r.Notes {
			fmt.Fprintf(bw, "  - %s\n", visible(n))
		}
	}
	fmt.Fprintf(bw, "\nIntegrity at generation: %s\n", visible(r.Integrity))
	return bw.Flush()
}

func writeFields(w io.Writer, fields []Field) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range fields {
		fmt.Fprintf(tw, "  %s:\t%s\n", visible(f.Label), visible(orDash(text(f.Value))))
	}
	tw.Flush()
}

func writeTable(w io.Writer, cols []Column, rows [][]any) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "  (none)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cells := make([]string, len(cols))
	for i, c := range cols {
		cells[i] = strings.ToUpper(visible(c.Label))
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
	for i, c := range cells {
		cells[i] = strings.Repeat("-", len(c))
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
	for _, row := range rows {
		for i, v := range row {
			cells[i] = visible(orDash(text(v)))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// orDash shows an empty value as "-" so columns stay readable.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
