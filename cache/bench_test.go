package cache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/cache"
	"github.com/auditdb/auditdb/client"
	"github.com/auditdb/auditdb/tests/harness"
)

// BenchmarkReadCache compares one query (a page of 100 events of one
// principal in one organization, out of 50,000 rows) read uncached with
// client.Search, and through the cache: a miss of both levels (the load,
// plus Redis's lookup and store), an L2 hit (L1 off), an L1 hit, an L1 hit
// decoded back into a client.Page (what a caller of Get pays on top), and
// the same through Typed[client.Page], whose L1 keeps the decoded page. The
// cached bytes are the page as JSON.
//
//	go test -run '^$' -bench ReadCache -benchtime 2s ./cache/
func BenchmarkReadCache(b *testing.B) {
	if testing.Short() {
		b.Skip("writes 50,000 events")
	}
	ctx := context.Background()
	db := harness.NewDB(b)
	c, err := client.New(ctx, db.URL)
	require.NoError(b, err)
	defer c.Close()
	require.NoError(b, insertEvents(ctx, c, 50000))
	// as autovacuum would after a load this size: statistics for the
	// planner, hint bits and the visibility map set, so that the uncached
	// query is measured at its best
	_, err = db.Pool.Exec(ctx, `VACUUM (ANALYZE) audit.audit_log`)
	require.NoError(b, err)
	rdb := sharedRedis(b)

	q := client.Query{OrganizationID: "org-2", PrincipalID: "dr-7", Limit: 100}
	load := func(ctx context.Context) ([]byte, error) {
		page, err := c.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		return json.Marshal(page)
	}
	var first []byte
	for range 20 { // warm PostgreSQL's buffers and the pool's prepared statements
		first, err = load(ctx)
		require.NoError(b, err)
	}
	var page client.Page
	require.NoError(b, json.Unmarshal(first, &page))
	require.Len(b, page.Events, 100)
	b.Logf("page: %d events, %d bytes of JSON", len(page.Events), len(first))

	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			if _, err := load(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		cc := newCache(b, cache.Config{KeyPrefix: prefix(b)}, rdb)
		i := 0
		for b.Loop() {
			i++ // a new key each time: both levels miss
			if _, err := cc.Get(ctx, key(b, q.OrganizationID, "search", q, i), load); err != nil {
				b.Fatal(err)
			}
		}
		require.EqualValues(b, b.N, cc.Stats().Loads.Loads)
	})
	k := key(b, q.OrganizationID, "search", q)
	b.Run("l2_hit", func(b *testing.B) {
		cc := newCache(b, cache.Config{KeyPrefix: prefix(b), L1MaxBytes: -1}, rdb)
		_, err := cc.Get(ctx, k, load)
		require.NoError(b, err)
		for b.Loop() {
			if _, err := cc.Get(ctx, k, load); err != nil {
				b.Fatal(err)
			}
		}
		require.EqualValues(b, 1, cc.Stats().Loads.Loads)
	})
	b.Run("l1_hit", func(b *testing.B) {
		cc := newCache(b, cache.Config{KeyPrefix: prefix(b)}, rdb)
		_, err := cc.Get(ctx, k, load)
		require.NoError(b, err)
		for b.Loop() {
			if _, err := cc.Get(ctx, k, load); err != nil {
				b.Fatal(err)
			}
		}
		require.EqualValues(b, 1, cc.Stats().Loads.Loads)
	})
	searchPage := func(ctx context.Context) (client.Page, error) { return c.Search(ctx, q) }
	b.Run("l2_hit_typed", func(b *testing.B) {
		cc := cache.NewTyped(newCache(b, cache.Config{KeyPrefix: prefix(b), L1MaxBytes: -1}, rdb), cache.JSONCodec[client.Page]())
		for b.Loop() {
			if _, err := cc.Get(ctx, k, searchPage); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("l1_hit_typed", func(b *testing.B) {
		cc := cache.NewTyped(newCache(b, cache.Config{KeyPrefix: prefix(b)}, rdb), cache.JSONCodec[client.Page]())
		for b.Loop() {
			if _, err := cc.Get(ctx, k, searchPage); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("l1_hit_decoded", func(b *testing.B) {
		cc := newCache(b, cache.Config{KeyPrefix: prefix(b)}, rdb)
		for b.Loop() {
			v, err := cc.Get(ctx, k, load)
			if err != nil {
				b.Fatal(err)
			}
			var p client.Page
			if err := json.Unmarshal(v, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// insertEvents writes n events over 5 organizations and 50 principals,
// one second apart, inside the partitions the template creates.
func insertEvents(ctx context.Context, c *client.Client, n int) error {
	now := time.Now().UTC()
	base := time.Date(now.Year(), now.Month(), 1, 12, 0, 0, 0, time.UTC).AddDate(0, 1, 0)
	events := make([]client.Event, n)
	for i := range events {
		latency := int32(i % 500)
		events[i] = client.Event{
			Timestamp:          base.Add(time.Duration(i) * time.Second),
			Action:             "fhir.patient.read",
			Status:             client.StatusSuccess,
			PrincipalID:        fmt.Sprintf("dr-%d", i%50),
			PrincipalType:      "practitioner",
			OrganizationID:     fmt.Sprintf("org-%d", i%5),
			TargetResourceType: "Patient",
			TargetResourceID:   fmt.Sprintf("patient-%d", i),
			SourceIP:           netip.AddrFrom4([4]byte{10, 0, byte(i / 250 % 250), byte(i%250 + 1)}),
			OutcomeDescription: "Viewed chart",
			Details:            map[string]any{"department": "cardiology", "n": i},
			DataClassification: client.ClassificationPHI,
			EventVersion:       "2.1",
			CorrelationID:      fmt.Sprintf("req-%d", i),
			ProcessingLatency:  &latency,
		}
	}
	_, err := c.InsertBatch(ctx, events)
	return err
}
