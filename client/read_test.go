package client

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	seedActions  = []string{"fhir.patient.read", "fhir.patient.write", "auth.login", "a%b.read", "aXb.read", "a_b.read", "a!b.read", "fhir.observation.read"}
	seedStatuses = []Status{StatusSuccess, StatusFailure, StatusAttempt}
	seedClasses  = []DataClassification{ClassificationPHI, ClassificationInternal, ClassificationPublic, ClassificationConfidential}
)

// seedEvent varies every field Search filters on.
func seedEvent(i int) Event {
	e := validEvent(i)
	e.Timestamp = baseTime.Add(time.Duration(i) * time.Minute)
	e.Action = seedActions[i%len(seedActions)]
	e.Status = seedStatuses[i%len(seedStatuses)]
	e.DataClassification = seedClasses[i%len(seedClasses)]
	e.TargetResourceType = []string{"Patient", "Observation"}[i%2]
	return e
}

// newestFirst orders events as Search does and returns their correlation
// ids (unique per seeded event).
func newestFirst(events []Event) []string {
	sorted := slices.Clone(events)
	// seeded timestamps are distinct, so ids never need to break a tie here
	slices.SortFunc(sorted, func(a, b Event) int { return b.Timestamp.Compare(a.Timestamp) })
	out := make([]string, len(sorted))
	for i, e := range sorted {
		out[i] = e.CorrelationID
	}
	return out
}

func correlationIDs(events []StoredEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.CorrelationID
	}
	return out
}

func TestSearchFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := setup(t, Config{})

	seeded := make([]Event, 96)
	for i := range seeded {
		seeded[i] = seedEvent(i)
	}
	_, err := c.InsertBatch(ctx, seeded)
	require.NoError(t, err)

	at := func(i int) time.Time { return seeded[i].Timestamp }
	for _, tc := range []struct {
		name  string
		query Query
		match func(e Event) bool
	}{
		{"everything", Query{}, func(Event) bool { return true }},
		{"organization", Query{OrganizationID: "org-1"}, func(e Event) bool { return e.OrganizationID == "org-1" }},
		{"principal", Query{PrincipalID: "dr-3"}, func(e Event) bool { return e.PrincipalID == "dr-3" }},
		{"resource type", Query{TargetResourceType: "Observation"}, func(e Event) bool { return e.TargetResourceType == "Observation" }},
		{"resource", Query{TargetResourceID: "patient-42"}, func(e Event) bool { return e.TargetResourceID == "patient-42" }},
		{"resource type and id", Query{TargetResourceType: "Patient", TargetResourceID: "patient-43"}, func(e Event) bool { return false }},
		{"action", Query{Action: "auth.login"}, func(e Event) bool { return e.Action == "auth.login" }},
		{"action prefix", Query{ActionPrefix: "fhir.patient."}, func(e Event) bool { return e.Action == "fhir.patient.read" || e.Action == "fhir.patient.write" }},
		{"prefix with %", Query{ActionPrefix: "a%"}, func(e Event) bool { return e.Action == "a%b.read" }},
		{"prefix with _", Query{ActionPrefix: "a_"}, func(e Event) bool { return e.Action == "a_b.read" }},
		{"prefix with the escape character", Query{ActionPrefix: "a!"}, func(e Event) bool { return e.Action == "a!b.read" }},
		{"prefix matching nothing", Query{ActionPrefix: "zzz"}, func(e Event) bool { return false }},
		{"status", Query{Status: StatusFailure}, func(e Event) bool { return e.Status == StatusFailure }},
		{"classification", Query{DataClassification: ClassificationPublic}, func(e Event) bool { return e.DataClassification == ClassificationPublic }},
		{"from (inclusive)", Query{From: at(90)}, func(e Event) bool { return !e.Timestamp.Before(at(90)) }},
		{"to (exclusive)", Query{To: at(5)}, func(e Event) bool { return e.Timestamp.Before(at(5)) }},
		{"from and to", Query{From: at(10), To: at(20)}, func(e Event) bool { return !e.Timestamp.Before(at(10)) && e.Timestamp.Before(at(20)) }},
		{"combined", Query{OrganizationID: "org-0", Status: StatusSuccess, ActionPrefix: "fhir.", From: at(12)},
			func(e Event) bool {
				return e.OrganizationID == "org-0" && e.Status == StatusSuccess && e.Action[:5] == "fhir." && !e.Timestamp.Before(at(12))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []Event
			for _, e := range seeded {
				if tc.match(e) {
					want = append(want, e)
				}
			}
			q := tc.query
			q.Limit = QueryLimitMax
			page, err := c.Search(ctx, q)
			require.NoError(t, err)
			require.Nil(t, page.Next)
			require.Equal(t, newestFirst(want), correlationIDs(page.Events))
			n, err := c.Count(ctx, tc.query)
			require.NoError(t, err)
			require.EqualValues(t, len(want), n)
		})
	}
}

// Pages cover every event exactly once, newest first, ties broken by id,
// even while newer events arrive.
func TestSearchPagination(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, db := setup(t, Config{})

	events := make([]Event, 250)
	for i := range events {
		events[i] = validEvent(i)
		// groups of three share a timestamp: the id decides their order
		events[i].Timestamp = baseTime.Add(time.Duration(i/3) * time.Second)
	}
	_, err := c.InsertBatch(ctx, events)
	require.NoError(t, err)

	rows, err := db.Pool.Query(ctx, `SELECT id FROM audit.audit_log ORDER BY "timestamp" DESC, id DESC`)
	require.NoError(t, err)
	var want []int64
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		want = append(want, id)
	}
	require.NoError(t, rows.Err())
	require.Len(t, want, 250)

	for _, limit := range []int{7, 10, 250, 1000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			var got []int64
			q := Query{Limit: limit}
			pages := 0
			for {
				page, err := c.Search(ctx, q)
				require.NoError(t, err)
				pages++
				require.NotEmpty(t, page.Events, "no empty page")
				for _, e := range page.Events {
					got = append(got, e.ID)
				}
				if page.Next == nil {
					break
				}
				require.Len(t, page.Events, limit, "only the last page is short")
				// pass the cursor through its string form, as a web API would
				cur, err := ParseCursor(page.Next.String())
				require.NoError(t, err)
				require.Equal(t, *page.Next, cur)
				q.After = &cur
			}
			require.Equal(t, want, got)
			require.Equal(t, (250+limit-1)/limit, pages)
		})
	}

	// newer events written between pages do not shift the pages
	page, err := c.Search(ctx, Query{Limit: 100})
	require.NoError(t, err)
	later := make([]Event, 5)
	for i := range later {
		later[i] = validEvent(1000 + i)
		later[i].Timestamp = baseTime.Add(time.Hour)
	}
	_, err = c.InsertBatch(ctx, later)
	require.NoError(t, err)
	got := correlationIDs(page.Events)
	for q := (Query{Limit: 100, After: page.Next}); q.After != nil; {
		p, err := c.Search(ctx, q)
		require.NoError(t, err)
		got = append(got, correlationIDs(p.Events)...)
		q.After = p.Next
	}
	require.Len(t, got, 250)
	seen := map[string]bool{}
	for _, id := range got {
		require.False(t, seen[id], "%s twice", id)
		seen[id] = true
	}

	// filtered pagination
	var filtered []int64
	q := Query{OrganizationID: "org-2", Limit: 9}
	for {
		p, err := c.Search(ctx, q)
		require.NoError(t, err)
		for _, e := range p.Events {
			require.Equal(t, "org-2", e.OrganizationID)
			filtered = append(filtered, e.ID)
		}
		if p.Next == nil {
			break
		}
		q.After = p.Next
	}
	n, err := c.Count(ctx, Query{OrganizationID: "org-2"})
	require.NoError(t, err)
	require.EqualValues(t, n, len(filtered))
	require.True(t, slices.IsSortedFunc(filtered, func(a, b int64) int {
		return slices.Index(want, a) - slices.Index(want, b)
	}))
}

func TestQueryValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := setup(t, Config{})
	now := baseTime
	for _, tc := range []struct {
		name  string
		query Query
		want  string
	}{
		{"negative limit", Query{Limit: -1}, "client: Query.Limit: must not be negative (-1)"},
		{"limit too large", Query{Limit: 1001}, "client: Query.Limit: must be at most 1000 (1001)"},
		{"bad status", Query{Status: "ok"}, "client: Query.Status: must be one of attempt, success, failure"},
		{"bad classification", Query{DataClassification: "phi"}, "client: Query.DataClassification: must be one of PUBLIC, INTERNAL, CONFIDENTIAL, PHI"},
		{"to before from", Query{From: now, To: now.Add(-time.Second)}, "client: Query.To: must be after Query.From"},
		{"empty range", Query{From: now, To: now}, "client: Query.To: must be after Query.From"},
		{"from out of range", Query{From: time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)}, "client: Query.From: out of range"},
		{"cursor without timestamp", Query{After: &Cursor{ID: 4}}, "client: Query.After: Timestamp is required"},
		{"invalid UTF-8", Query{PrincipalID: "\xff"}, "client: Query.PrincipalID: must be valid UTF-8"},
		{"NUL", Query{ActionPrefix: "a\x00"}, "client: Query.ActionPrefix: must not contain NUL characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Search(ctx, tc.query)
			require.EqualError(t, err, tc.want)
			_, err = c.Count(ctx, tc.query)
			require.EqualError(t, err, tc.want)
		})
	}
	page, err := c.Search(ctx, Query{Limit: QueryLimitMax})
	require.NoError(t, err)
	require.Empty(t, page.Events)
	require.Nil(t, page.Next)

	_, err = ParseCursor("garbage")
	require.EqualError(t, err, "client: cursor: malformed")
}

func TestGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := setup(t, Config{})

	r, err := c.Insert(ctx, validEvent(9))
	require.NoError(t, err)
	got, err := c.Get(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, r.ID, got.ID)
	require.Equal(t, r.ChainID, got.ChainID)
	require.Equal(t, r.ChainSeq, got.ChainSeq)
	require.Equal(t, r.Hash, got.Hash)
	require.True(t, r.RecordedAt.Equal(got.RecordedAt))
	require.Equal(t, "patient-9", got.TargetResourceID)

	_, err = c.Get(ctx, r.ID+1000)
	require.ErrorIs(t, err, ErrNotFound)
	require.EqualError(t, err, fmt.Sprintf("client: event not found (id %d)", r.ID+1000))
}
