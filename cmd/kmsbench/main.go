// Command kmsbench load-tests raftkms with the real protocol and compares
// it with a baseline server that does only the cryptography: see
// docs/PERFORMANCE.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/raftkms/raftkms/api/client"
	"github.com/raftkms/raftkms/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the flags of run and compare.
type options struct {
	endpoints, credentials, caFile string
	workload, mix                  string
	concurrency                    int
	duration, warmup               time.Duration
	rate, keySkew                  float64
	keys, blobs                    int
	keysFile                       string
	payload, dataKeyBytes          int
	encryptionContext              string
	seed                           uint64
	jsonOut, htmlOut               string
	quiet, failOnErrors            bool
	cpuProfile                     string
	markdown, label                string
	rounds                         int
	baselineURL                    string
}

type usageError struct{ error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	root := &cobra.Command{
		Use:           "kmsbench",
		Short:         "Load-test raftkms: throughput, latency (HDR), errors by code, per node; against a baseline",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	runCmd := &cobra.Command{Use: "run", Short: "Drive one workload against one node or a cluster and report", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(cmd.Context(), stderr)
			if err != nil {
				return err
			}
			res, err := bench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if err := bench.WriteText(stdout, res); err != nil {
				return err
			}
			if err := o.write(res, []bench.Result{*res}, nil); err != nil {
				return err
			}
			if err := o.appendMarkdown(bench.MarkdownHeader, bench.MarkdownRow(o.rowLabel(), res)); err != nil {
				return err
			}
			return o.check(res)
		}}
	o.flags(runCmd)
	compareCmd := &cobra.Command{Use: "compare", Short: "Alternate the baseline and raftkms under the same load; print the ratio", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(cmd.Context(), stderr)
			if err != nil {
				return err
			}
			url := o.baselineURL
			if url == "" {
				var stopBaseline func()
				url, stopBaseline, err = startBaseline()
				if err != nil {
					return err
				}
				defer stopBaseline()
			}
			cmp, err := bench.Compare(cmd.Context(), cfg, url, o.rounds)
			if err != nil {
				return err
			}
			if err := bench.WriteComparisonText(stdout, cmp); err != nil {
				return err
			}
			if err := o.write(cmp, nil, []bench.Comparison{*cmp}); err != nil {
				return err
			}
			if err := o.appendMarkdown(bench.CompareHeader, bench.CompareRow(o.rowLabel(), cmp)); err != nil {
				return err
			}
			for i := range cmp.Rounds {
				if err := o.check(&cmp.Rounds[i]); err != nil {
					return err
				}
			}
			return nil
		}}
	o.flags(compareCmd)
	compareCmd.Flags().IntVar(&o.rounds, "rounds", 3, "baseline/raftkms pairs to run")
	compareCmd.Flags().StringVar(&o.baselineURL, "baseline-url", "", "a running baseline (default: start one on a free loopback port)")

	var addr string
	baselineCmd := &cobra.Command{Use: "baseline", Short: "Serve the baseline: only GenerateDataKey's cryptography, no signature, policy, Raft or trail", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := bench.NewBaseline()
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "baseline listening on http://%s\n", ln.Addr())
			go func() { <-cmd.Context().Done(); b.Shutdown() }()
			return b.Serve(ln)
		}}
	baselineCmd.Flags().StringVar(&addr, "addr", "127.0.0.1:9999", "address to listen on")

	var count int
	var out string
	keysCmd := &cobra.Command{Use: "keys --count N --out FILE", Short: "Create N keys to spread load over (a run reads them with --keys-file)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.base()
			if err != nil {
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			w := bufio.NewWriter(f)
			start := time.Now()
			_, err = bench.CreateKeys(cmd.Context(), cfg, count, w)
			if ferr := w.Flush(); err == nil {
				err = ferr
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "created %d keys in %s (%.0f/s), ids appended to %s\n", count, time.Since(start).Round(time.Millisecond),
				float64(count)/time.Since(start).Seconds(), out)
			return nil
		}}
	keysCmd.Flags().StringVar(&o.endpoints, "endpoints", "http://127.0.0.1:8080", "API URLs, comma-separated")
	keysCmd.Flags().StringVar(&o.credentials, "credentials", "", "credentials file (default: ALIBABA_CLOUD_ACCESS_KEY_* or ./data/root-credentials.json)")
	keysCmd.Flags().StringVar(&o.caFile, "ca-file", "", "CA certificates for https endpoints")
	keysCmd.Flags().IntVar(&o.concurrency, "concurrency", 64, "keys created at once")
	keysCmd.Flags().IntVar(&count, "count", 1000, "keys to create")
	keysCmd.Flags().StringVar(&out, "out", "", "file to append the key ids to")
	keysCmd.MarkFlagRequired("out")

	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if o.cpuProfile == "" {
			return nil
		}
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		return pprof.StartCPUProfile(f)
	}
	defer pprof.StopCPUProfile()
	root.AddCommand(runCmd, compareCmd, baselineCmd, keysCmd)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return 0
	case errors.As(err, new(usageError)) || strings.Contains(err.Error(), "flag") || strings.Contains(err.Error(), "unknown command"):
		fmt.Fprintf(stderr, "kmsbench: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "kmsbench: %v\n", err)
	return 1
}

func (o *options) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.endpoints, "endpoints", "http://127.0.0.1:8080", "API URLs, comma-separated: connections are spread over them")
	f.StringVar(&o.credentials, "credentials", "", "credentials file (default: ALIBABA_CLOUD_ACCESS_KEY_* or ./data/root-credentials.json)")
	f.StringVar(&o.caFile, "ca-file", "", "CA certificates for https endpoints")
	f.StringVar(&o.workload, "workload", bench.GenerateDataKey, "one of "+strings.Join(bench.Workloads, ", "))
	f.StringVar(&o.mix, "mix", "generate-data-key=60,decrypt=30,encrypt=10", "weights of a mixed run")
	f.IntVar(&o.concurrency, "concurrency", 64, "connections, one request in flight each")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "measured time")
	f.DurationVar(&o.warmup, "warmup", 2*time.Second, "time run before measuring")
	f.Float64Var(&o.rate, "rate", 0, "open loop: requests/s due at a constant rate, latency from when due (0: closed loop)")
	f.IntVar(&o.keys, "keys", 10, "keys to create and spread the load over (ignored with --keys-file)")
	f.StringVar(&o.keysFile, "keys-file", "", "key ids to use, one a line (kmsbench keys writes it)")
	f.Float64Var(&o.keySkew, "key-skew", 0, "0: pick keys evenly; above 1: Zipf's exponent s (a few hot keys, a long tail)")
	f.IntVar(&o.blobs, "blobs", 1000, "ciphertexts made before a decrypt or re-encrypt run")
	f.IntVar(&o.payload, "payload-bytes", 32, "plaintext bytes per encrypt, 1-6144")
	f.IntVar(&o.dataKeyBytes, "data-key-bytes", 32, "NumberOfBytes of generated data keys")
	f.StringVar(&o.encryptionContext, "encryption-context", "", `JSON sent with every cryptographic call, e.g. '{"table":"orders"}'`)
	f.Uint64Var(&o.seed, "seed", 1, "seed of the workload's random choices")
	f.StringVar(&o.jsonOut, "json", "", "write the result as JSON to this file")
	f.StringVar(&o.htmlOut, "html", "", "write a self-contained HTML report to this file")
	f.BoolVar(&o.quiet, "quiet", false, "no progress line")
	f.BoolVar(&o.failOnErrors, "fail-on-errors", false, "exit 1 if any request failed (for CI smoke runs)")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write the harness's own CPU profile to this file")
	f.StringVar(&o.markdown, "markdown", "", "append the result as a row of a Markdown table to this file (the header when it is new)")
	f.StringVar(&o.label, "label", "", "the row's label in --markdown (default: the workload)")
}

// base is the configuration every subcommand shares: endpoints and credentials.
func (o *options) base() (bench.Config, error) {
	cfg := bench.Config{Endpoints: strings.Split(o.endpoints, ","), Concurrency: o.concurrency}
	var err error
	switch {
	case o.credentials != "":
		cfg.Credentials, err = client.LoadCredentials(o.credentials)
	default:
		var ok bool
		if cfg.Credentials, ok = client.CredentialsFromEnv(); !ok {
			cfg.Credentials, err = client.LoadCredentials("data/root-credentials.json")
			if err != nil {
				err = usageError{errors.New("no credentials: pass --credentials FILE or set ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET")}
			}
		}
	}
	if err != nil {
		return cfg, err
	}
	if o.caFile != "" {
		cfg.TLS, err = client.LoadCA(o.caFile)
	}
	return cfg, err
}

// config prepares a run: keys (created or read) and ciphertexts.
func (o *options) config(ctx context.Context, stderr io.Writer) (bench.Config, error) {
	cfg, err := o.base()
	if err != nil {
		return cfg, err
	}
	cfg.Workload, cfg.Duration, cfg.Warmup, cfg.Rate = o.workload, o.duration, o.warmup, o.rate
	cfg.PayloadBytes, cfg.DataKeyBytes, cfg.EncryptionContext, cfg.Seed = o.payload, o.dataKeyBytes, o.encryptionContext, o.seed
	cfg.KeySkew = o.keySkew
	if !o.quiet {
		cfg.Progress = stderr
	}
	if cfg.Workload == bench.Mixed {
		if cfg.Mix, err = bench.ParseMix(o.mix); err != nil {
			return cfg, usageError{err}
		}
	}
	if cfg.Workload == bench.CreateKey {
		return cfg, nil
	}
	if o.keysFile != "" {
		cfg.KeyIDs, err = bench.ReadKeys(o.keysFile)
	} else {
		cfg.KeyIDs, err = bench.CreateKeys(ctx, cfg, o.keys, nil)
	}
	if err != nil {
		return cfg, err
	}
	if cfg.Workload == bench.Decrypt || cfg.Workload == bench.ReEncrypt || cfg.Mix[bench.Decrypt] > 0 || cfg.Mix[bench.ReEncrypt] > 0 {
		cfg.Blobs, err = bench.MakeBlobs(ctx, cfg, o.blobs)
	}
	return cfg, err
}

// write writes the JSON and HTML reports asked for.
func (o *options) write(v any, results []bench.Result, cmps []bench.Comparison) error {
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if o.htmlOut != "" {
		f, err := os.Create(o.htmlOut)
		if err != nil {
			return err
		}
		if err := bench.WriteHTML(f, "kmsbench "+o.workload, results, cmps); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}

// check fails a run with errors when --fail-on-errors asks for it.
func (o *options) check(r *bench.Result) error {
	if !o.failOnErrors || len(r.Errors) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %v failed requests", r.Name, r.Errors)
}

// startBaseline runs `kmsbench baseline` as a child process on a free
// loopback port: a process of its own, as the node is, so neither shares
// the other's scheduler or garbage collector.
func startBaseline() (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(exe, "baseline", "--addr", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("the baseline did not start: %v", err)
	}
	url := strings.TrimSpace(strings.TrimPrefix(line, "baseline listening on "))
	return url, stop, nil
}

func (o *options) rowLabel() string {
	if o.label != "" {
		return o.label
	}
	return o.workload
}

// appendMarkdown appends row to the --markdown file, after header unless
// the file already ends with a row of a table.
func (o *options) appendMarkdown(header, row string) error {
	if o.markdown == "" {
		return nil
	}
	old, _ := os.ReadFile(o.markdown)
	lines := strings.Split(strings.TrimRight(string(old), "\n"), "\n")
	inTable := strings.HasPrefix(lines[len(lines)-1], "|")
	f, err := os.OpenFile(o.markdown, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if !inTable {
		f.WriteString(header)
	}
	_, err = f.WriteString(row)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
