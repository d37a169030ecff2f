package main

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/anchor"
	"github.com/auditdb/auditdb/integrity"
)

// OfflineReport is what `verify --offline` could and could not check, with
// no database: the bundles, and the archive files against their ranges and
// the anchored positions inside them.
type OfflineReport struct {
	Status   string                  `json:"status"` // intact or tampered
	Anchors  *integrity.AnchorReport `json:"anchors"`
	Archives []OfflineArchive        `json:"archives"`
	// AnchoredPositions counts every position trusted bundles anchor
	// (empty chains left out); InArchives those an archive held and so were
	// checked; the rest are rows still in the database, not checked here.
	AnchoredPositions int                 `json:"anchored_positions"`
	InArchives        int                 `json:"anchored_positions_checked_in_archives"`
	NotChecked        int                 `json:"anchored_positions_not_checked"`
	Findings          []integrity.Finding `json:"findings"`
}

// OfflineArchive is one archive file's outcome.
type OfflineArchive struct {
	Name    string `json:"name"`
	Status  string `json:"status"` // intact, tampered, or "not checked: ..."
	Rows    int64  `json:"rows"`
	Ranges  int    `json:"ranges"`
	Anchors int    `json:"anchors_checked"`
}

// verifyOffline checks, with no database, the bundles of --anchors and the
// archive files of --archives against each other.
func verifyOffline(c *cli.Context) error {
	opts, err := anchorCheckOptions(c)
	if err != nil {
		return err
	}
	if opts == nil {
		return errors.New("anchors: required with --offline (and --anchor-keys)")
	}
	logID := opts.LogID
	if logID == "" {
		logs, err := anchor.Logs(c.Context, opts.Sink)
		if err != nil {
			return err
		}
		if len(logs) != 1 {
			return fmt.Errorf("log-id: the sink holds %d logs, name one", len(logs))
		}
		logID = logs[0]
	}
	ar, err := anchor.Check(c.Context, opts.Sink, integrity.AnchorOptions{LogID: logID, Keys: opts.Keys, MinSignatures: opts.MinSignatures})
	if err != nil {
		return err
	}
	rep := &OfflineReport{Status: "intact", Anchors: ar, Archives: []OfflineArchive{}, Findings: append([]integrity.Finding{}, ar.Findings...)}
	if ar.Bundles == 0 {
		rep.Findings = append(rep.Findings, integrity.Finding{Kind: integrity.AnchorGap, Detail: "no bundle of log " + logID + " in " + opts.Sink.Location()})
	}
	// each position counted once, whatever number of bundles name it
	type pos struct {
		chain int16
		seq   int64
	}
	all := map[pos]bool{}
	for chain, hs := range ar.Heads {
		for _, h := range hs {
			all[pos{chain, h.Seq}] = false
		}
	}
	if loc := c.String("archives"); loc != "" {
		sink, err := anchor.OpenSink(c.Context, loc)
		if err != nil {
			return fmt.Errorf("archives: %w", err)
		}
		names, err := sink.List(c.Context, "")
		if err != nil {
			return fmt.Errorf("archives: %w", err)
		}
		for _, name := range names {
			a := OfflineArchive{Name: name}
			rc, err := sink.Open(c.Context, name)
			if err != nil {
				return fmt.Errorf("archives: %w", err)
			}
			arep, err := integrity.VerifyArchiveAnchored(rc, nil, ar.Heads)
			rc.Close()
			if err != nil {
				a.Status = "not checked: " + oneLine(err.Error())
				rep.Archives = append(rep.Archives, a)
				continue
			}
			a.Status, a.Rows, a.Ranges, a.Anchors = arep.Status, arep.Rows, len(arep.Header.Ranges), arep.AnchorsChecked
			for _, rg := range arep.Header.Ranges {
				for p := range all {
					if p.chain == rg.ChainID && p.seq >= rg.FirstSeq && p.seq <= rg.LastSeq {
						all[p] = true
					}
				}
			}
			for _, f := range arep.Findings {
				f.Detail = name + ": " + f.Detail
				rep.Findings = append(rep.Findings, f)
			}
			rep.Archives = append(rep.Archives, a)
		}
	}
	rep.AnchoredPositions = len(all)
	for _, in := range all {
		if in {
			rep.InArchives++
		}
	}
	rep.NotChecked = rep.AnchoredPositions - rep.InArchives
	if len(rep.Findings) > 0 {
		rep.Status = "tampered"
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, rep); err != nil {
			return err
		}
	} else {
		printOffline(c.App.Writer, rep)
	}
	if rep.Status != "intact" {
		return errTampered
	}
	return nil
}

func printOffline(w io.Writer, rep *OfflineReport) {
	verdict := "INTACT"
	if rep.Status != "intact" {
		verdict = "TAMPERED"
	}
	a := rep.Anchors
	fmt.Fprintf(w, "offline verification %s (no database)\n", verdict)
	fmt.Fprintf(w, "checked: %d bundle(s) of log %s, %d trusted (signatures, roots, numbering, prev links, no chain going back), %d witness cosignature(s)\n",
		a.Bundles, a.Log, a.Trusted, a.Cosignatures)
	fmt.Fprintf(w, "checked: %d archive file(s) against their ranges; %d of %d anchored position(s) inside them against their rows\n",
		len(rep.Archives), rep.InArchives, rep.AnchoredPositions)
	fmt.Fprintf(w, "not checked: %d anchored position(s) whose rows are in the database (run verify --anchors against it)\n", rep.NotChecked)
	if len(rep.Archives) > 0 {
		fmt.Fprintln(w)
		rows := make([][]string, len(rep.Archives))
		sort.Slice(rep.Archives, func(i, j int) bool { return rep.Archives[i].Name < rep.Archives[j].Name })
		for i, ar := range rep.Archives {
			rows[i] = []string{ar.Name, fmt.Sprint(ar.Ranges), fmt.Sprint(ar.Rows), fmt.Sprint(ar.Anchors), ar.Status}
		}
		table(w, []string{"ARCHIVE", "RANGES", "ROWS", "ANCHORS", "STATUS"}, rows)
	}
	printFindings(w, rep.Findings)
}
