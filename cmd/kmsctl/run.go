package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/raftkms/raftkms/api/client"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the service answered with an error, or it could not be reached
	exitUsage = 2
)

// defaultCredentials is where `make run` leaves the root AccessKey.
const defaultCredentials = "data/root-credentials.json"

type globals struct {
	endpoint    string
	credentials string
	caFile      string
	timeout     time.Duration
}

// longTimeout bounds transfers of whole snapshots.
func (g *globals) longTimeout() time.Duration { return max(g.timeout, 30*time.Minute) }

// run is kmsctl; it returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var g globals
	root := &cobra.Command{
		Use:   "kmsctl",
		Short: "kmsctl calls a raftkms cluster: one subcommand per API action, JSON out",
		Long: `kmsctl calls a raftkms cluster: one subcommand per API action, JSON out.

Credentials come from --credentials FILE (the root-credentials.json format),
else ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, else
./data/root-credentials.json (where make run writes them). On an error kmsctl
prints the Alibaba error code on stderr and exits 1.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.endpoint, "endpoint", envOr("KMSCTL_ENDPOINT", "http://127.0.0.1:8080"), "API endpoint (env KMSCTL_ENDPOINT)")
	root.PersistentFlags().StringVar(&g.credentials, "credentials", "", "credentials file: {\"AccessKeyId\":…,\"AccessKeySecret\":…}")
	root.PersistentFlags().DurationVar(&g.timeout, "timeout", 30*time.Second, "request timeout")
	root.PersistentFlags().StringVar(&g.caFile, "ca-file", os.Getenv("KMSCTL_CA_FILE"), "PEM CA certificates to trust for an https endpoint (env KMSCTL_CA_FILE)")
	for _, a := range actions {
		root.AddCommand(actionCommand(a, &g))
	}
	root.AddCommand(clusterCommand(&g), policyCommand(&g), trailCommand(&g))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ae *client.Error
	if errors.As(err, &ae) {
		fmt.Fprintf(stderr, "%s: %s (HTTP %d, RequestId %s)\n", ae.Code, ae.Message, ae.StatusCode, ae.RequestID)
		return exitError
	}
	var ue usageError
	if errors.As(err, &ue) || isFlagError(err) {
		fmt.Fprintf(stderr, "kmsctl: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "kmsctl: %v\n", err)
	return exitError
}

type usageError struct{ error }

func isFlagError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown command", "required flag", "invalid argument", "flag needs an argument", "accepts "} {
		if bytes.Contains([]byte(msg), []byte(p)) {
			return true
		}
	}
	return false
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func actionCommand(a action, g *globals) *cobra.Command {
	values := make(map[string]any, len(a.params))
	cmd := &cobra.Command{
		Use:   kebab(a.name),
		Short: a.help + " (" + a.name + ")",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			params := map[string]string{}
			for _, p := range a.params {
				f := cmd.Flags().Lookup(flagName(p))
				if !f.Changed {
					continue
				}
				switch v := values[p.name].(type) {
				case *string:
					params[p.name] = *v
					if p.kind == file {
						b, err := os.ReadFile(*v)
						if err != nil {
							return err
						}
						params[p.name] = string(b)
					}
				case *int64:
					params[p.name] = strconv.FormatInt(*v, 10)
				case *bool:
					params[p.name] = strconv.FormatBool(*v)
				}
			}
			c, err := newClient(g)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			body, err := c.CallVersion(ctx, a.version, a.name, params)
			if err != nil {
				return err
			}
			return printJSON(cmd, body)
		},
	}
	for _, p := range a.params {
		name := flagName(p)
		help := p.help + " (" + p.name + ")"
		switch p.kind {
		case text, file:
			values[p.name] = cmd.Flags().String(name, "", help)
		case integer:
			values[p.name] = cmd.Flags().Int64(name, 0, help)
		case boolean:
			values[p.name] = cmd.Flags().Bool(name, false, help)
		}
		if p.required {
			cmd.MarkFlagRequired(name)
		}
	}
	return cmd
}

// flagName is a parameter's flag: KeyId → key-id; a file parameter gets
// "-file" (Module → module-file).
func flagName(p param) string {
	if p.kind == file {
		return kebab(p.name) + "-file"
	}
	return kebab(p.name)
}

func newClient(g *globals) (*client.Client, error) {
	creds, err := credentials(g.credentials)
	if err != nil {
		return nil, err
	}
	cfg := client.Config{Endpoint: g.endpoint, Credentials: creds, Timeout: g.timeout}
	if g.caFile != "" {
		if cfg.TLS, err = client.LoadCA(g.caFile); err != nil {
			return nil, err
		}
	}
	return client.New(cfg)
}

func credentials(path string) (client.Credentials, error) {
	if path != "" {
		return client.LoadCredentials(path)
	}
	if c, ok := client.CredentialsFromEnv(); ok {
		return c, nil
	}
	if _, err := os.Stat(defaultCredentials); err == nil {
		return client.LoadCredentials(defaultCredentials)
	}
	return client.Credentials{}, usageError{errors.New("no credentials: pass --credentials FILE or set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET")}
}
