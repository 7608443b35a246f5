package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/raftkms/raftkms/policy"
)

// policyCommand is `kmsctl policy …`: tools for policy authors that run
// the same engine kmsd runs, offline or against the cluster.
func policyCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Evaluate and test Rego modules and RAM policy documents"}
	cmd.AddCommand(policyEvalCommand(g), policyTestCommand())
	return cmd
}

func policyEvalCommand(g *globals) *cobra.Command {
	var (
		inputFile   string
		moduleFiles []string
		userDocs    []string
		remote      bool
	)
	cmd := &cobra.Command{
		Use:   "eval --input FILE.json",
		Short: "Decide an input document: offline with the given modules and documents, or --remote under the cluster's",
		Long: `Decide an input document (docs/POLICY.md describes its fields) and print
{"Allow":…,"Reasons":[…]}.

Offline (the default) the decision uses the built-in rules plus the Rego
modules given with --module and the user policy documents given with
--user-policy ACCOUNT/USER/NAME=FILE.json. With --remote the cluster decides
the input under its published modules and documents (EvaluatePolicy).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			text, err := os.ReadFile(inputFile)
			if err != nil {
				return err
			}
			if remote {
				if len(moduleFiles) > 0 || len(userDocs) > 0 {
					return usageError{errors.New("--remote decides under the cluster's policies: drop --module and --user-policy")}
				}
				c, err := newClient(g)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
				defer cancel()
				body, err := c.CallVersion(ctx, ownVersion, "EvaluatePolicy", map[string]string{"Input": string(text)})
				if err != nil {
					return err
				}
				var d struct {
					Allow   bool
					Reasons []string
				}
				if err := json.Unmarshal(body, &d); err != nil {
					return err
				}
				return printDecision(cmd, d.Allow, d.Reasons)
			}
			var in policy.Input
			dec := json.NewDecoder(bytes.NewReader(text))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				return fmt.Errorf("%s: not a policy input document: %v", inputFile, err)
			}
			modules, err := readModules(moduleFiles)
			if err != nil {
				return err
			}
			users, err := readUserPolicies(userDocs)
			if err != nil {
				return err
			}
			d, err := policy.EvaluateFiles(cmd.Context(), &in, modules, users)
			if err != nil {
				return err
			}
			return printDecision(cmd, d.Allow, d.Reasons)
		},
	}
	cmd.Flags().StringVar(&inputFile, "input", "", "the input document (JSON)")
	cmd.MarkFlagRequired("input")
	cmd.Flags().StringArrayVar(&moduleFiles, "module", nil, "a Rego module in package kms.custom (repeatable)")
	cmd.Flags().StringArrayVar(&userDocs, "user-policy", nil, "ACCOUNT/USER/NAME=FILE.json: a RAM policy document attached to a user (repeatable)")
	cmd.Flags().BoolVar(&remote, "remote", false, "let the cluster decide under its published policies")
	return cmd
}

func printDecision(cmd *cobra.Command, allow bool, reasons []string) error {
	if reasons == nil {
		reasons = []string{}
	}
	out, err := json.MarshalIndent(struct {
		Allow   bool     `json:"Allow"`
		Reasons []string `json:"Reasons"`
	}{allow, reasons}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), string(out))
	return err
}

// readModules reads Rego files; a module is named after its file.
func readModules(files []string) ([]policy.Module, error) {
	var out []policy.Module
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, policy.Module{Name: strings.TrimSuffix(filepath.Base(f), ".rego"), Source: string(b)})
	}
	return out, nil
}

// readUserPolicies reads ACCOUNT/USER/NAME=FILE arguments.
func readUserPolicies(args []string) ([]policy.UserPolicy, error) {
	var out []policy.UserPolicy
	for _, a := range args {
		who, file, ok := strings.Cut(a, "=")
		parts := strings.Split(who, "/")
		if !ok || len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" || file == "" {
			return nil, usageError{fmt.Errorf("--user-policy %q: want ACCOUNT/USER/NAME=FILE.json", a)}
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		out = append(out, policy.UserPolicy{Account: parts[0], User: parts[1], Name: parts[2], Document: string(b)})
	}
	return out, nil
}

func policyTestCommand() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run the Rego unit tests (test_* rules) under DIR against the real decision",
		Long: `Run the Rego unit tests under DIR, as opa test would, with raftkms's built-in
modules loaded: tests read data.kms.authz.decision and may supply user
policy documents with 'with data.raftkms.user_policies as {…}'. Tests live
in their own packages (package tests.…), outside kms.custom. Exits 1 when a
test fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			results, err := policy.RunTests(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if len(results) == 0 {
				return fmt.Errorf("no tests (rules named test_…) under %s", args[0])
			}
			w := cmd.OutOrStdout()
			failed := 0
			for _, r := range results {
				switch {
				case !r.Pass:
					failed++
					fmt.Fprintf(w, "FAIL %s.%s: %s\n", r.Package, r.Name, r.Error)
				case verbose:
					fmt.Fprintf(w, "PASS %s.%s (%s)\n", r.Package, r.Name, r.Duration)
				}
			}
			fmt.Fprintf(w, "%d/%d passed\n", len(results)-failed, len(results))
			if failed > 0 {
				return fmt.Errorf("%d of %d tests failed", failed, len(results))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list passing tests too")
	return cmd
}
