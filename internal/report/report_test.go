package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const script = `<script>alert(1)</script>`

func sample() *Report {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC)
	return &Report{
		Kind: "access", Title: "Access report", Subtitle: "Patient " + script,
		Parameters:  []Field{{Key: "resource_id", Label: "Resource", Value: script}},
		GeneratedAt: at,
		Columns:     []Column{{Key: "time", Label: "Time"}, {Key: "who", Label: "Who"}, {Key: "n", Label: "N"}, {Key: "note", Label: "Note"}},
		Rows: [][]any{
			{at, "=HYPERLINK(\"http://evil\")", int64(-3), nil},
			{at.Add(time.Second), "dr-1", 7, "line1\nline2\x1b[31m"},
			{at.Add(2 * time.Second), "@SUM(A1)", int16(2), "-2+3"},
		},
		Summary:   []Field{{Key: "events", Label: "Events", Value: 3}, {Key: "ok", Label: "OK", Value: true}},
		Sections:  []Section{{Title: "By action", Columns: []Column{{Key: "action", Label: "Action"}}, Rows: [][]any{{script}}}},
		Notes:     []string{"a note & " + script},
		Integrity: "16 chains intact",
		Statement: "Verdict INTACT & " + script,
	}
}

func render(t *testing.T, r *Report, f Format) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, r.Render(&b, f))
	return b.String()
}

func TestJSON(t *testing.T) {
	t.Parallel()
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(render(t, sample(), FormatJSON)), &got))
	require.Equal(t, "access", got["kind"])
	require.Equal(t, "2026-03-04T05:06:07.890000Z", got["generated_at"])
	require.Equal(t, map[string]any{"resource_id": script}, got["parameters"])
	rows := got["rows"].([]any)
	require.Len(t, rows, 3)
	require.Equal(t, map[string]any{"time": "2026-03-04T05:06:07.890000Z", "who": "=HYPERLINK(\"http://evil\")", "n": float64(-3), "note": nil}, rows[0],
		"JSON keeps values as they are, with their types")
	require.Equal(t, map[string]any{"events": float64(3), "ok": true}, got["summary"])
	require.Equal(t, "By action", got["sections"].([]any)[0].(map[string]any)["title"])
	require.Equal(t, "16 chains intact", got["integrity"])
	require.Equal(t, "Verdict INTACT & "+script, got["statement"])
}

func TestMarshalJSONMatchesRender(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(sample())
	require.NoError(t, err)
	require.JSONEq(t, render(t, sample(), FormatJSON), string(b))
	bad := sample()
	bad.Summary[0].Value = 1.5
	_, err = json.Marshal(bad)
	require.ErrorIs(t, err, ErrValueType)
}

func TestCSVDefusesFormulas(t *testing.T) {
	t.Parallel()
	recs, err := csv.NewReader(strings.NewReader(render(t, sample(), FormatCSV))).ReadAll()
	require.NoError(t, err)
	require.Equal(t, [][]string{
		{"time", "who", "n", "note"},
		{"2026-03-04T05:06:07.890000Z", "'=HYPERLINK(\"http://evil\")", "-3", ""},
		{"2026-03-04T05:06:08.890000Z", "dr-1", "7", "line1\nline2\x1b[31m"},
		{"2026-03-04T05:06:09.890000Z", "'@SUM(A1)", "2", "'-2+3"},
		{"# generated_at", "2026-03-04T05:06:07.890000Z", "", ""},
		{"# integrity", "16 chains intact", "", ""},
	}, recs, "the table, then the integrity status, as every format ends")

	// a one-column table keeps one field per record
	one := &Report{Kind: "x", Columns: []Column{{Key: "n", Label: "N"}}, Rows: [][]any{{1}}, Integrity: "ok"}
	recs, err = csv.NewReader(strings.NewReader(render(t, one, FormatCSV))).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"# integrity: ok"}, recs[len(recs)-1])
	for _, s := range []string{"+1", "\tx", "\rx", "-x", "=1", "@x", "  =1", "\n=1", "＝1", "＠x"} {
		require.Equal(t, "'"+s, DefuseFormula(s), s)
	}
	for _, s := range []string{"a=1", "", "  ", "dr-1", "'=1"} {
		require.Equal(t, s, DefuseFormula(s), s)
	}
}

func TestHTMLEscapesAndIsSelfContained(t *testing.T) {
	t.Parallel()
	out := render(t, sample(), FormatHTML)
	require.NotContains(t, out, script)
	require.Contains(t, out, "&lt;script&gt;alert(1)&lt;/script&gt;")
	require.Equal(t, 5, strings.Count(out, "&lt;script&gt;alert(1)&lt;/script&gt;"), "subtitle, parameter, statement, section cell, note")
	require.Contains(t, out, "a note &amp; ")
	require.NotContains(t, strings.ToLower(out), "<script")
	require.NotContains(t, out, "http://evil\"", "quotes escaped too")
	for _, external := range []string{"<link", "src=", "@import", "url("} {
		require.NotContains(t, out, external)
	}
	require.Contains(t, out, "@media print")
	require.Contains(t, out, "<footer>")
	require.Contains(t, out, "16 chains intact")
	require.Contains(t, out, "2026-03-04T05:06:07.890000Z")
}

func TestTextShowsControlCharactersAsEscapes(t *testing.T) {
	t.Parallel()
	out := render(t, sample(), FormatTable)
	require.NotContains(t, out, "\x1b")
	require.Contains(t, out, `line1\nline2\x1b[31m`)
	require.Contains(t, out, "Integrity at generation: 16 chains intact")
	require.Contains(t, out, "\nVerdict INTACT & "+script+"\n\nTIME")
	require.Contains(t, out, "TIME")
	lines := strings.Split(out, "\n")
	require.Equal(t, "Access report", lines[0])
}

func TestRenderRejectsBadReports(t *testing.T) {
	t.Parallel()
	r := sample()
	r.Rows = append(r.Rows, []any{1})
	require.ErrorContains(t, r.Render(&bytes.Buffer{}, FormatJSON), "row 3 has 1 values for 4 columns")
	r = sample()
	r.Rows[0][2] = 1.5
	require.ErrorIs(t, r.Render(&bytes.Buffer{}, FormatCSV), ErrValueType)
	require.ErrorContains(t, sample().Render(&bytes.Buffer{}, "pdf"), "format: must be one of table, json, csv, html")
	_, err := ParseFormat("HTML")
	require.Error(t, err)
	f, err := ParseFormat("csv")
	require.NoError(t, err)
	require.Equal(t, FormatCSV, f)
}

func TestEmptyReport(t *testing.T) {
	t.Parallel()
	r := &Report{Kind: "access", Title: "Access report", Columns: []Column{{Key: "a", Label: "A"}}}
	for _, f := range Formats {
		out := render(t, r, f)
		require.NotEmpty(t, out, f)
	}
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(render(t, r, FormatJSON)), &got))
	require.Equal(t, []any{}, got["rows"])
	require.Contains(t, render(t, r, FormatTable), "(none)")
	require.Contains(t, render(t, r, FormatHTML), "None.")
}

// An auditor's page: headers never break inside a word, hashes show
// shortened with the full value in the title and in a printed appendix,
// a verdict heads the page as a badge, and there is a print stylesheet.
func TestHTMLForPrint(t *testing.T) {
	t.Parallel()
	hash := strings.Repeat("0123456789abcdef", 4)
	r := sample()
	r.Verdict = "TAMPERED"
	r.Columns = append(r.Columns, Column{Key: "hash", Label: "Head hash"})
	for i := range r.Rows {
		r.Rows[i] = append(r.Rows[i], hash)
	}
	r.Summary = append(r.Summary, Field{Key: "mac", Label: "MAC", Value: strings.ToUpper(hash)},
		Field{Key: "psn", Label: "Pseudonym", Value: "psn_" + hash[:32]}, Field{Key: "short", Label: "Short hex", Value: hash[:31]})
	out := render(t, r, FormatHTML)

	require.NotContains(t, out, "overflow-wrap: anywhere", "nothing may break anywhere, headers least of all")
	require.Regexp(t, `th \{[^}]*word-break: keep-all`, out)
	require.Contains(t, out, `<span class="hash" title="`+hash+`">`+hash[:HashShownChars]+`…<sup>1</sup></span>`)
	require.Equal(t, 3, strings.Count(out, `title="`+hash+`"`), "three rows, each with the full value on hover")
	require.Equal(t, 3, strings.Count(out, `…<sup>1</sup>`), "one appendix entry for one value")
	require.Contains(t, out, "<h2>Full values</h2>")
	require.Contains(t, out, `<td class="mono">`+hash+`</td>`, "the appendix prints it in full")
	require.Contains(t, out, "Events, Time 2026-03-04T05:06:07.890000Z: Head hash", "the appendix says where the value was first")
	require.Contains(t, out, "Summary: MAC")
	require.Contains(t, out, `<span class="hash" title="psn_`+hash[:32]+`">psn_01234567…<sup>3</sup></span>`)
	require.Contains(t, out, "<dd>"+hash[:31]+"</dd>", "shorter than a digest: shown whole")
	require.Contains(t, out, `<section class="verdict bad"`)
	require.Contains(t, out, `<h2 class="badge"><small>Verdict</small>TAMPERED</h2>`)
	require.Contains(t, out, `<th class="num">N</th>`, "number columns are right-aligned")
	require.Contains(t, out, "@media print")
	require.Contains(t, out, "size: A4 landscape")

	// without hashes or a verdict there is no appendix and no badge
	out = render(t, sample(), FormatHTML)
	require.NotContains(t, out, "Full values")
	require.NotContains(t, out, `class="verdict`)
	require.Contains(t, out, `<p class="statement">`)
}
