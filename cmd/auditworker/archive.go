package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/objstore"
	"github.com/auditdb/auditdb/internal/verifier"
)

func archiveCommand() *cli.Command {
	return &cli.Command{
		Name:  "archive",
		Usage: "retention archive files",
		Subcommands: []*cli.Command{
			{
				Name:      "verify",
				Usage:     "check an archive file: rows, chain links and end hashes from the file alone; digest and manifest seals against the database (exit 0 intact, 2 tampered, 1 error)",
				ArgsUsage: "FILE|s3://bucket/prefix/NAME",
				Flags: append([]cli.Flag{
					jsonFlag(),
					&cli.BoolFlag{Name: "offline", Usage: "check the file alone, even with a database configured", EnvVars: []string{"AUDIT_ARCHIVE_OFFLINE"}},
				}, sealKeyFlags()...),
				Action: archiveVerify,
			},
		},
	}
}

func archiveVerify(c *cli.Context) error {
	path, err := oneArg(c, "FILE")
	if err != nil {
		return err
	}
	keys, err := optionalSealKeys(c)
	if err != nil {
		return err
	}
	var progress func(int64)
	var f io.ReadCloser
	if strings.HasPrefix(path, "s3://") {
		// an archive in a bucket: s3://bucket/prefix/NAME, read with the AWS_* settings
		i := strings.LastIndex(path, "/")
		st, err := objstore.Open(c.Context, path[:i])
		if err != nil {
			return err
		}
		if f, err = st.Get(c.Context, path[i+1:]); err != nil {
			return err
		}
		defer f.Close()
	} else {
		file, err := os.Open(path)
		if err != nil {
			return err
		}
		defer file.Close()
		f = file
		if st, err := file.Stat(); err == nil && isTerminal(c.App.ErrWriter) {
			start, size := time.Now(), st.Size()
			progress = func(n int64) { bytesBar(c.App.ErrWriter, n, size, start) }
		}
	}
	rep, err := integrity.VerifyArchive(f, progress)
	if progress != nil {
		fmt.Fprintln(c.App.ErrWriter)
	}
	if err != nil {
		return err
	}
	if c.String("database-url") != "" && !c.Bool("offline") {
		pool, err := connect(c)
		if err != nil {
			return err
		}
		defer pool.Close()
		var ring integrity.Keyring
		if keys != nil {
			ring = keys.Ring
		}
		if err := verifier.CheckArchiveManifests(c.Context, pool, rep, ring); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, rep); err != nil {
			return err
		}
	} else {
		printArchiveReport(c.App.Writer, path, rep)
	}
	if !rep.Intact() {
		return errTampered
	}
	return nil
}

// bytesBar is progressBar's bar for bytes: MiB and MiB/s.
func bytesBar(w io.Writer, done, total int64, start time.Time) {
	bar, frac := drawBar(done, total)
	mib := float64(done) / (1 << 20)
	fmt.Fprintf(w, "\rarchive verify [%s] %3.0f%% %.1f MiB, %.1f MiB/s ", bar, frac*100, mib, mib/max(time.Since(start).Seconds(), 1e-9))
}

func printArchiveReport(w io.Writer, file string, rep *integrity.ArchiveReport) {
	verdict := "INTACT"
	if !rep.Intact() {
		verdict = "TAMPERED"
	}
	fmt.Fprintf(w, "archive %s: %s, %d rows in %d range(s), sha256 %s\n", verdict, file, rep.Rows, len(rep.Header.Ranges), rep.SHA256)
	switch {
	case !rep.ManifestsChecked:
		fmt.Fprintln(w, "checked from the file alone: no database, so the digest and manifest seals were not compared")
	case !rep.MACsChecked:
		fmt.Fprintln(w, "compared with the database's manifests; their seals not checked: no seal keys configured")
	default:
		fmt.Fprintln(w, "compared with the database's manifests; their seals verify")
	}
	if rep.Redacted > 0 {
		fmt.Fprintf(w, "%d row(s) erased under GDPR (commitments taken as stored)\n", rep.Redacted)
	}
	fmt.Fprintln(w)
	rows := make([][]string, len(rep.Header.Ranges))
	for i, rg := range rep.Header.Ranges {
		rows[i] = []string{fmt.Sprint(rg.ChainID), fmt.Sprint(rg.FirstSeq), fmt.Sprint(rg.LastSeq), fmt.Sprint(rg.RowCount), rg.EndHash[:min(16, len(rg.EndHash))]}
	}
	table(w, []string{"CHAIN", "FIRST SEQ", "LAST SEQ", "ROWS", "END HASH"}, rows)
	printFindings(w, rep.Findings)
}
