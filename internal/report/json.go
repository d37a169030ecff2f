package report

import (
	"encoding/json"
	"io"
)

// jsonReport is the JSON shape of a report: rows and fields become objects
// keyed by column and field keys, so programs need not know column order.
type jsonReport struct {
	Kind        string           `json:"kind"`
	Title       string           `json:"title"`
	Subtitle    string           `json:"subtitle,omitempty"`
	GeneratedAt string           `json:"generated_at"`
	Statement   string           `json:"statement,omitempty"`
	Verdict     string           `json:"verdict,omitempty"`
	Parameters  map[string]any   `json:"parameters"`
	Columns     []jsonColumn     `json:"columns"`
	Rows        []map[string]any `json:"rows"`
	Summary     map[string]any   `json:"summary"`
	Sections    []jsonSection    `json:"sections"`
	Notes       []string         `json:"notes"`
	Integrity   string           `json:"integrity"`
}

type jsonColumn struct {
	Key   string `json:"key"`
	Label string `json:"label"`
}

type jsonSection struct {
	Title   string           `json:"title"`
	Columns []jsonColumn     `json:"columns"`
	Rows    []map[string]any `json:"rows"`
}

// MarshalJSON encodes r in the shape Render writes for FormatJSON, so a
// report embedded in other JSON reads the same.
func (r *Report) MarshalJSON() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	return json.Marshal(r.jsonShape())
}

// writeJSON writes r as one indented JSON object.
func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.jsonShape())
}

func (r *Report) jsonShape() jsonReport {
	out := jsonReport{
		Kind: r.Kind, Title: r.Title, Subtitle: r.Subtitle, GeneratedAt: FormatTime(r.GeneratedAt), Statement: r.Statement, Verdict: r.Verdict,
		Parameters: jsonFields(r.Parameters), Columns: jsonColumns(r.Columns), Rows: jsonRows(r.Columns, r.Rows),
		Summary: jsonFields(r.Summary), Sections: make([]jsonSection, len(r.Sections)),
		Notes: r.Notes, Integrity: r.Integrity,
	}
	if out.Notes == nil {
		out.Notes = []string{}
	}
	for i, s := range r.Sections {
		out.Sections[i] = jsonSection{Title: s.Title, Columns: jsonColumns(s.Columns), Rows: jsonRows(s.Columns, s.Rows)}
	}
	return out
}

func jsonFields(fields []Field) map[string]any {
	m := make(map[string]any, len(fields))
	for _, f := range fields {
		m[f.Key] = jsonValue(f.Value)
	}
	return m
}

func jsonColumns(cols []Column) []jsonColumn {
	out := make([]jsonColumn, len(cols))
	for i, c := range cols {
		out[i] = jsonColumn(c)
	}
	return out
}

func jsonRows(cols []Column, rows [][]any) []map[string]any {
	out := make([]map[string]any, len(rows))
	for i, row := range rows {
		m := make(map[string]any, len(cols))
		for j, v := range row {
			m[cols[j].Key] = jsonValue(v)
		}
		out[i] = m
	}
	return out
}
