package client

import (
	"context"
	"testing"

	"github.com/auditdb/auditdb/tests/harness"
)

// BenchmarkInsertPaths writes the same 10,000 events one Insert at a time
// and with one InsertBatch, side by side, into a database of their own (the
// harness's server: fsync off, so single inserts are not paying for a disk
// flush each; on a durable server the batch's lead is larger). The
// insert trigger is the C accelerator when installed, as migrated.
//
//	go test -run '^$' -bench InsertPaths -benchtime 3x ./client/
func BenchmarkInsertPaths(b *testing.B) {
	if testing.Short() {
		b.Skip("writes 10,000 events per iteration")
	}
	const n = 10000
	events := make([]Event, n)
	for i := range events {
		events[i] = validEvent(i)
	}
	db := harness.NewDB(b)
	c, err := New(context.Background(), db.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	b.Run("single_inserts_10000", func(b *testing.B) {
		for range b.N {
			for _, e := range events {
				if _, err := c.Insert(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("insert_batch_10000", func(b *testing.B) {
		for range b.N {
			if _, err := c.InsertBatch(ctx, events); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
