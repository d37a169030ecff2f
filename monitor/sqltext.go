package monitor

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
)

// normalizedMaxLen bounds normalised statements: logs and span attributes
// want a recognisable statement, not a 100 kB generated IN list.
const normalizedMaxLen = 300

// NormalizeSQL returns sql in a form safe to log: every literal (quoted
// string, E” or dollar-quoted string, number) becomes ?, comments are
// dropped (they can hold anything) and runs of white space become one
// space; it is cut at 300 bytes with "…". Parameters ($1) and identifiers
// stay, so the statement is still recognisable. Statements written with
// parameters, as this project's are, lose nothing; a statement that put a
// value inline loses the value.
func NormalizeSQL(sql string) string {
	var b strings.Builder
	b.Grow(min(len(sql), normalizedMaxLen+4))
	space := false
	emit := func(s string) {
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteString(s)
	}
	for i := 0; i < len(sql) && b.Len() <= normalizedMaxLen; {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			space = true
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
			space = true
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			i = skipBlockComment(sql, i)
			space = true
		case c == '\'':
			i = skipQuoted(sql, i, false)
			emit("?")
		case (c == 'E' || c == 'e') && i+1 < len(sql) && sql[i+1] == '\'' && !identChar(prev(sql, i)):
			i = skipQuoted(sql, i+1, true)
			emit("?")
		case c == '"':
			// a quoted identifier is kept as written
			j := i + 1
			for j < len(sql) {
				if sql[j] == '"' {
					if j+1 < len(sql) && sql[j+1] == '"' {
						j += 2
						continue
					}
					break
				}
				j++
			}
			j = min(j+1, len(sql))
			emit(sql[i:j])
			i = j
		case c == '$':
			if tag, ok := dollarTag(sql, i); ok {
				end := strings.Index(sql[i+len(tag):], tag)
				if end < 0 {
					i = len(sql)
				} else {
					i += len(tag) + end + len(tag)
				}
				emit("?")
				continue
			}
			j := i + 1
			for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
				j++
			}
			emit(sql[i:j])
			i = j
		case c >= '0' && c <= '9' && !identChar(prev(sql, i)),
			c == '.' && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9' && !identChar(prev(sql, i)):
			j := i
			for j < len(sql) && (identChar(sql[j]) || sql[j] == '.' ||
				((sql[j] == '+' || sql[j] == '-') && (sql[j-1] == 'e' || sql[j-1] == 'E'))) {
				j++
			}
			emit("?")
			i = j
		case identChar(c):
			j := i
			for j < len(sql) && identChar(sql[j]) {
				j++
			}
			emit(sql[i:j])
			i = j
		default:
			emit(sql[i : i+1])
			i++
		}
	}
	out := b.String()
	if len(out) > normalizedMaxLen {
		cut := normalizedMaxLen
		for cut > 0 && !utf8Start(out[cut]) {
			cut--
		}
		out = out[:cut] + "…"
	}
	return out
}

// Fingerprint names a statement by its normalised form: the first 8 bytes
// of its SHA-256, in hex. Statements that differ only in literals, comments
// or spacing share a fingerprint, so slow-query log lines group.
func Fingerprint(sql string) string { return fingerprintOf(NormalizeSQL(sql)) }

func fingerprintOf(normalized string) string {
	sum := sha256.Sum256([]byte(normalized))
	return hex.EncodeToString(sum[:8])
}

func prev(s string, i int) byte {
	if i == 0 {
		return ' '
	}
	return s[i-1]
}

func identChar(c byte) bool {
	return c == '_' || c >= 0x80 || unicode.IsLetter(rune(c)) || (c >= '0' && c <= '9')
}

func utf8Start(c byte) bool { return c&0xC0 != 0x80 }

// skipQuoted returns the index after the string literal opening at i.
// backslash says whether \ escapes (E” strings).
func skipQuoted(s string, i int, backslash bool) int {
	for j := i + 1; j < len(s); j++ {
		switch {
		case backslash && s[j] == '\\':
			j++
		case s[j] == '\'':
			if j+1 < len(s) && s[j+1] == '\'' {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

func skipBlockComment(s string, i int) int {
	depth := 0
	for j := i; j+1 < len(s); j++ {
		switch {
		case s[j] == '/' && s[j+1] == '*':
			depth++
			j++
		case s[j] == '*' && s[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(s)
}

// dollarTag reports the $tag$ opening a dollar-quoted string at i.
func dollarTag(s string, i int) (string, bool) {
	j := i + 1
	for j < len(s) && (s[j] == '_' || unicode.IsLetter(rune(s[j])) || s[j] >= 0x80 || (j > i+1 && s[j] >= '0' && s[j] <= '9')) {
		j++
	}
	if j < len(s) && s[j] == '$' {
		return s[i : j+1], true
	}
	return "", false
}
