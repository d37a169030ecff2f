package report

import (
	_ "embed"
	"html/template"
	"io"
)

//go:embed report.html.tmpl
var htmlSource string

// page is html/template's auto-escaping template: every value is escaped
// for where it lands (element text, attribute), so PHI-bearing values
// cannot inject markup or script.
var page = template.Must(template.New("report").Parse(htmlSource))

type htmlField struct{ Label, Value string }

type htmlTable struct {
	Title   string
	Headers []string
	Rows    [][]string
}

type htmlPage struct {
	Title, Subtitle, Kind, GeneratedAt, Statement, Integrity string
	Parameters, Summary                                      []htmlField
	Main                                                     htmlTable
	Sections                                                 []htmlTable
	Notes                                                    []string
}

// writeHTML writes r as one self-contained HTML page: inline CSS with a
// print stylesheet, no scripts, no external assets, so it can be archived
// or printed as it is.
func (r *Report) writeHTML(w io.Writer) error {
	p := htmlPage{
		Title: r.Title, Subtitle: r.Subtitle, Kind: r.Kind, GeneratedAt: FormatTime(r.GeneratedAt),
		Statement: r.Statement, Integrity: r.Integrity, Parameters: htmlFields(r.Parameters), Summary: htmlFields(r.Summary),
		Main: htmlTableOf("", r.Columns, r.Rows), Notes: r.Notes,
	}
	for _, s := range r.Sections {
		p.Sections = append(p.Sections, htmlTableOf(s.Title, s.Columns, s.Rows))
	}
	return page.Execute(w, p)
}

func htmlFields(fields []Field) []htmlField {
	out := make([]htmlField, len(fields))
	for i, f := range fields {
		out[i] = htmlField{Label: f.Label, Value: text(f.Value)}
	}
	return out
}

func htmlTableOf(title string, cols []Column, rows [][]any) htmlTable {
	t := htmlTable{Title: title, Headers: make([]string, len(cols)), Rows: make([][]string, len(rows))}
	for i, c := range cols {
		t.Headers[i] = c.Label
	}
	for i, row := range rows {
		cells := make([]string, len(row))
		for j, v := range row {
			cells[j] = text(v)
		}
		t.Rows[i] = cells
	}
	return t
}
