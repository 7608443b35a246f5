package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/raftkms/raftkms/api/client"
	"github.com/raftkms/raftkms/trail"
)

// trailCommand is `kmsctl trail …`: exporting and verifying the audit
// trail, for the system account's root. (kmsctl lookup-events queries it.)
func trailCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "trail", Short: "Export and verify the audit trail's hash chain"}
	var output string
	var startSeq uint64
	export := &cobra.Command{Use: "export --output FILE", Short: "Write the whole trail to FILE as JSON lines, checking its chain (ExportTrail)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tmp, err := os.CreateTemp(filepath.Dir(output), ".trail-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			sum, verr := exportTrail(cmd.Context(), g, startSeq, func(body io.Reader) (*trail.Verifier, error) {
				return trail.VerifyExport(io.TeeReader(body, tmp))
			})
			if err := tmp.Close(); err != nil {
				return err
			}
			if sum == nil { // the export itself failed
				return verr
			}
			if err := os.Rename(tmp.Name(), output); err != nil {
				return err
			}
			if verr != nil {
				return fmt.Errorf("%s written, but the trail does not verify: %w", output, verr)
			}
			return printSummary(cmd, output, sum)
		}}
	export.Flags().StringVar(&output, "output", "", "the file to write (JSON lines, one record a line)")
	export.MarkFlagRequired("output")
	export.Flags().Uint64Var(&startSeq, "start-seq", 1, "the first record to export")

	var file string
	verify := &cobra.Command{Use: "verify [--file FILE]", Short: "Verify an exported file, or (without --file) the cluster's whole trail", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file != "" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				sum, err := trail.VerifyExport(f)
				if err != nil {
					return fmt.Errorf("%s does not verify: %w", file, err)
				}
				return printSummary(cmd, file, sum)
			}
			sum, err := exportTrail(cmd.Context(), g, 1, trail.VerifyExport)
			if err != nil {
				return fmt.Errorf("the cluster's trail does not verify: %w", err)
			}
			return printSummary(cmd, "", sum)
		}}
	verify.Flags().StringVar(&file, "file", "", "an export written by kmsctl trail export")
	cmd.AddCommand(export, verify)
	return cmd
}

// exportSummary is a verifier's result and the node that exported.
type exportSummary struct {
	*trail.Verifier
	node string
}

// exportTrail streams ExportTrail through check and makes sure the export
// reached the record the node named when it started.
func exportTrail(ctx context.Context, g *globals, from uint64, check func(io.Reader) (*trail.Verifier, error)) (*exportSummary, error) {
	c, err := newClient(g)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.longTimeout())
	defer cancel()
	var sum *exportSummary
	var verr error
	err = c.Stream(ctx, ownVersion, "ExportTrail", map[string]string{"StartSeq": strconv.FormatUint(from, 10)},
		func(h client.Header, body io.Reader) error {
			v, err := check(body)
			sum, verr = &exportSummary{Verifier: v, node: h.Get("x-raftkms-node")}, err
			if err != nil {
				return nil
			}
			last, perr := strconv.ParseUint(h.Get("x-raftkms-trail-last"), 10, 64)
			if perr != nil {
				return errors.New("the node did not say where its trail ends (x-raftkms-trail-last)")
			}
			if last >= from && v.Last != last {
				verr = fmt.Errorf("the export stopped at record %d; the node's trail reached %d when it started", v.Last, last)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return sum, verr
}

func printSummary(cmd *cobra.Command, file string, v any) error {
	var s *trail.Verifier
	node := ""
	switch x := v.(type) {
	case *exportSummary:
		s, node = x.Verifier, x.node
	case *trail.Verifier:
		s = x
	}
	out := fmt.Sprintf("{\n  \"Verified\": true,\n  \"Records\": %d,\n  \"FirstSeq\": %d,\n  \"LastSeq\": %d,\n  \"FirstPrevHash\": %q,\n  \"LastHash\": %q",
		s.Count, s.First, s.Last, hex.EncodeToString(s.FirstPrev[:]), hex.EncodeToString(s.LastHash[:]))
	if file != "" {
		out += fmt.Sprintf(",\n  \"File\": %q", file)
	}
	if node != "" {
		out += fmt.Sprintf(",\n  \"Node\": %q", node)
	}
	_, err := fmt.Fprintln(cmd.OutOrStdout(), out+"\n}")
	return err
}
