package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// The trigger refuses details whose text form (details::text) is longer
// than 65,536 bytes. That size depends on how PostgreSQL prints jsonb, not
// on how Go encodes JSON: keys sorted and separated by ", " and ": ",
// numbers printed by numeric_out (1e+300 becomes 301 digits). This file
// computes it exactly so that Event.Validate agrees with the database on
// every document, and finds numbers numeric cannot hold.
const detailsTextLimit = 65536

// smallDetails is the size of Go-encoded details below which the text form
// cannot reach detailsTextLimit when no number has an exponent: printing
// adds at most a space per separator, so it at most doubles the size.
const smallDetails = 512

// errNumberRange is a JSON number that PostgreSQL's numeric cannot hold.
var errNumberRange = errors.New("number out of range")

// jsonbSize is a document's size as PostgreSQL's jsonb prints it.
type jsonbSize struct {
	text int // octet_length(details::text)
}

func (s jsonbSize) tooLarge() bool { return s.text > detailsTextLimit }

// measureJSONB decodes JSON text and returns its sizes as jsonb, and
// whether a string in it (key or value) holds a NUL character, which jsonb
// refuses.
func measureJSONB(b []byte) (jsonbSize, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return jsonbSize{}, false, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return jsonbSize{}, false, errors.New("trailing data after the JSON value")
	}
	var m jsonbMeasure
	if err := m.value(v, true); err != nil {
		return jsonbSize{}, false, err
	}
	return jsonbSize{text: m.text}, m.nul, nil
}

type jsonbMeasure struct {
	text int
	nul  bool
}

// value adds v, a value inside a container (or the root when root).
func (m *jsonbMeasure) value(v any, root bool) error {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		// uniqueifyJsonbObject: shorter keys first, then bytewise
		sort.Slice(keys, func(i, j int) bool {
			if len(keys[i]) != len(keys[j]) {
				return len(keys[i]) < len(keys[j])
			}
			return keys[i] < keys[j]
		})
		m.text += 2 // {}
		for i, k := range keys {
			m.string(k)
			m.text += 2 // ": "
			if i > 0 {
				m.text += 2 // ", "
			}
		}
		for _, k := range keys {
			if err := m.value(x[k], false); err != nil {
				return err
			}
		}
	case []any:
		if root {
			return errors.New("not a JSON object")
		}
		m.text += 2 // []
		for i, e := range x {
			if i > 0 {
				m.text += 2
			}
			if err := m.value(e, false); err != nil {
				return err
			}
		}
	case string:
		if root {
			return errors.New("not a JSON object")
		}
		m.string(x)
	case json.Number:
		if root {
			return errors.New("not a JSON object")
		}
		text, err := numericTextSize(string(x))
		if err != nil {
			return err
		}
		m.text += text
	case bool:
		if root {
			return errors.New("not a JSON object")
		}
		if x {
			m.text += 4
		} else {
			m.text += 5
		}
	case nil:
		if root {
			return errors.New("not a JSON object")
		}
		m.text += 4
	default:
		return fmt.Errorf("unexpected JSON value %T", v)
	}
	return nil
}

// string adds the text of a JSON string as escape_json writes it.
func (m *jsonbMeasure) string(s string) {
	n := 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t' || c == '"' || c == '\\':
			n += 2
		case c == 0:
			m.nul = true
			n += 6
		case c < 0x20:
			n += 6 // \u00XX
		default:
			n++
		}
	}
	m.text += n
}

// numericTextSize returns the length of numeric_out's text for a JSON
// number, or errNumberRange when numeric_in would refuse it.
func numericTextSize(num string) (text int, err error) {
	s := num
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e := s[i+1:]
		s = s[:i]
		sign := 1
		switch {
		case strings.HasPrefix(e, "+"):
			e = e[1:]
		case strings.HasPrefix(e, "-"):
			e, sign = e[1:], -1
		}
		e = strings.TrimLeft(e, "0")
		if len(e) > 10 {
			return 0, errNumberRange
		}
		for _, c := range e {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("invalid number")
			}
			exp = exp*10 + int(c-'0')
		}
		if exp > math.MaxInt32/2 {
			// numeric_in: "value overflows numeric format"
			return 0, errNumberRange
		}
		exp *= sign
	}
	intPart, frac, _ := strings.Cut(s, ".")
	digits := intPart + frac
	// the decimal point sits after point digits of digits
	point := len(intPart) + exp
	dscale := max(len(frac)-exp, 0)
	if dscale > numericDscaleMax {
		return 0, errNumberRange
	}

	first := strings.IndexFunc(digits, nonZero)
	if first < 0 {
		// zero: no sign, "0" and dscale zeros; no base-10000 digits
		text = 1
		if dscale > 0 {
			text += 1 + dscale
		}
		return text, nil
	}
	// integer digits printed: from the first non-zero one up to the point
	intDigits := max(point-first, 1)
	text = intDigits
	if neg {
		text++
	}
	if dscale > 0 {
		text += 1 + dscale
	}
	// base-10000 digits: decimal digit i has power point-1-i
	if floorDiv(point-1-first, 4) > numericWeightMax {
		return 0, errNumberRange
	}
	return text, nil
}

// The limits of numeric's header fields (NUMERIC_DSCALE_MAX, and the int16
// weight in base-10000 digits); a smaller weight implies a larger dscale.
const (
	numericDscaleMax = 0x3FFF
	numericWeightMax = 32767
)

func nonZero(r rune) bool { return r != '0' }

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// hasExponent reports whether JSON text holds a number written with an
// exponent: outside strings, an e or E after a digit (true and false have
// theirs after a letter).
func hasExponent(b []byte) bool {
	inString, escaped := false, false
	for i, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case (c == 'e' || c == 'E') && i > 0 && b[i-1] >= '0' && b[i-1] <= '9':
			return true
		}
	}
	return false
}
