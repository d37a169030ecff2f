package client

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/auditdb/auditdb/cache"
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

// BenchmarkEnhancedReads reads one query (a page of 100 events of one
// principal in one organization, out of 50,000 rows; and the count of that
// organization's events) as a caller of the enhanced client gets it,
// against the same query uncached (Client.Search, Client.Count), side by
// side: a miss of both levels (the query, plus Redis's lookup and store),
// an L2 hit (L1 off: Redis, decompression, decoding) and an L1 hit (the
// decoded value kept in process).
//
//	go test -run '^$' -bench EnhancedReads -benchtime 2s -count 3 ./client/
func BenchmarkEnhancedReads(b *testing.B) {
	if testing.Short() {
		b.Skip("writes 50,000 events")
	}
	ctx := context.Background()
	db := harness.NewDB(b)
	events := make([]Event, 50000)
	for i := range events {
		events[i] = validEvent(i)
		events[i].OrganizationID = fmt.Sprintf("org-%d", i%5)
		events[i].PrincipalID = fmt.Sprintf("dr-%d", i%50)
	}
	plain, err := New(ctx, db.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.InsertBatch(ctx, events); err != nil {
		b.Fatal(err)
	}
	// as autovacuum would after a load this size
	if _, err := db.Pool.Exec(ctx, `VACUUM (ANALYZE) audit.audit_log`); err != nil {
		b.Fatal(err)
	}
	q := Query{OrganizationID: "org-2", PrincipalID: "dr-7", Limit: 100}
	for range 20 { // warm the buffers and the prepared statements
		p, err := plain.Search(ctx, q)
		if err != nil || len(p.Events) != 100 {
			b.Fatal(err, len(p.Events))
		}
	}
	newEnhanced := func(b *testing.B, l1 int64) *Enhanced {
		e, err := NewEnhanced(ctx, EnhancedConfig{Config: Config{URL: db.URL}, RedisURL: harness.SharedRedis().URL,
			Cache: cache.Config{KeyPrefix: fmt.Sprintf("bench:%s:%d:", b.Name(), time.Now().UnixNano()), L1MaxBytes: l1}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(e.Close)
		return e
	}
	// each case reads q (or, for a miss, q with a new To each time, the
	// same rows under a new key) with read, a Search or a Count
	run := func(b *testing.B, read func(Query) error, vary bool) {
		i := 0
		for b.Loop() {
			qq := q
			if vary {
				i++
				qq.To = baseTime.AddDate(1, 0, i)
			}
			if err := read(qq); err != nil {
				b.Fatal(err)
			}
		}
	}
	// hits must be hits: a Redis call that timed out on a loaded machine
	// turns one into a load, which a handful in thousands may do
	mostlyHits := func(b *testing.B, e *Enhanced) {
		if loads := e.CacheStats().Loads.Loads; loads > 1+uint64(b.N)/100 {
			b.Fatalf("%d loads in %d reads", loads, b.N)
		}
	}
	for _, op := range []struct {
		name     string
		uncached func(Query) error
		cached   func(*Enhanced, Query) error
	}{
		{"search", func(q Query) error { _, err := plain.Search(ctx, q); return err },
			func(e *Enhanced, q Query) error { _, err := e.Search(ctx, q); return err }},
		{"count", func(q Query) error { _, err := plain.Count(ctx, q); return err },
			func(e *Enhanced, q Query) error { _, err := e.Count(ctx, q); return err }},
	} {
		b.Run(op.name+"/uncached", func(b *testing.B) { run(b, op.uncached, false) })
		b.Run(op.name+"/miss", func(b *testing.B) {
			e := newEnhanced(b, 0)
			run(b, func(q Query) error { return op.cached(e, q) }, true)
		})
		b.Run(op.name+"/l2_hit", func(b *testing.B) {
			e := newEnhanced(b, -1)
			run(b, func(q Query) error { return op.cached(e, q) }, false)
			mostlyHits(b, e)
		})
		b.Run(op.name+"/l1_hit", func(b *testing.B) {
			e := newEnhanced(b, 0)
			run(b, func(q Query) error { return op.cached(e, q) }, false)
			mostlyHits(b, e)
		})
	}
}
