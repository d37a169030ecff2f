package auditsql

import (
	"strings"
	"testing"
)

func TestQueriesLoad(t *testing.T) {
	names := QueryNames()
	if len(names) == 0 {
		t.Fatal("no queries loaded")
	}
	for _, n := range names {
		q := MustQuery(n)
		if strings.TrimSpace(q) == "" || strings.HasSuffix(q, ";") {
			t.Errorf("query %s: empty or ends with a semicolon", n)
		}
	}
	if _, err := Query("NoSuchQuery"); err == nil {
		t.Error("an unknown name is an error")
	}
}
