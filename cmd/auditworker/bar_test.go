package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The row and byte progress bars draw the same bar.
func TestProgressBars(t *testing.T) {
	t.Parallel()
	bar, frac := drawBar(0, 0)
	require.Equal(t, strings.Repeat("#", 30), bar, "nothing to do is done")
	require.Equal(t, 1.0, frac)
	bar, frac = drawBar(1, 2)
	require.Equal(t, strings.Repeat("#", 15)+strings.Repeat(".", 15), bar)
	require.Equal(t, 0.5, frac)
	bar, _ = drawBar(5, 2)
	require.Equal(t, strings.Repeat("#", 30), bar, "capped at done")

	var rows, bytesOut bytes.Buffer
	progressBar(&rows, "verify", "rows", 1, 2, time.Now())
	bytesBar(&bytesOut, 1<<20, 2<<20, time.Now())
	want := "[" + strings.Repeat("#", 15) + strings.Repeat(".", 15) + "]  50%"
	require.Contains(t, rows.String(), "\rverify "+want+" 1/2 rows")
	require.Contains(t, bytesOut.String(), "\rarchive verify "+want+" 1.0 MiB")
}
