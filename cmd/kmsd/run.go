package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/raftkms/raftkms/api"
	"github.com/raftkms/raftkms/cluster"
	"github.com/raftkms/raftkms/crypto"
	"github.com/raftkms/raftkms/fsm"
	"github.com/raftkms/raftkms/policy"
	"github.com/raftkms/raftkms/trail"
)

// rootKeyEnv holds a base64 root key, for containers that get secrets
// from the environment.
const rootKeyEnv = "RAFTKMS_ROOT_KEY"

// run is kmsd: it returns when ctx ends (SIGINT/SIGTERM) after a clean
// shutdown, or with the error that stopped it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "dev-certs" {
		return devCerts(args[1:], stdout, stderr)
	}
	fl := flag.NewFlagSet("kmsd", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, usage); fl.PrintDefaults() }
	var (
		configPath  = fl.String("config", "", "YAML configuration file")
		dataDir     = fl.String("data-dir", "", "data directory (default ./data)")
		nodeID      = fl.String("node-id", "", "node id, unique in the cluster (default node1)")
		apiAddr     = fl.String("api-addr", "", "API listen address (default 127.0.0.1:8080)")
		raftAddr    = fl.String("raft-addr", "", "Raft listen and advertise address (default 127.0.0.1:8081)")
		rootKeyFile = fl.String("root-key-file", "", "root key file: 32 raw bytes, mode 0600 (default DATA-DIR/root.key)")
		join        = fl.String("join", "", "join the cluster of this node's API URL (e.g. http://10.0.0.1:8080) instead of starting a new one")
		nonVoter    = fl.Bool("non-voter", false, "with --join: join as a non-voting read replica")
		tlsCert     = fl.String("tls-cert", "", "this node's certificate (PEM) for mutual TLS between nodes")
		tlsKey      = fl.String("tls-key", "", "its private key (PEM)")
		tlsCA       = fl.String("tls-ca", "", "the CA certificates (PEM) that sign every node's certificate")
		apiCert     = fl.String("api-tls-cert", "", "certificate (PEM) to serve the API over TLS")
		apiKey      = fl.String("api-tls-key", "", "its private key (PEM)")
		pprofAddr   = fl.String("pprof-addr", "", "serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060 (off by default; never expose it)")
	)
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see kmsd --help)", fl.Args())
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	override := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	override(&cfg.Node.DataDir, *dataDir)
	override(&cfg.Node.ID, *nodeID)
	override(&cfg.Node.APIAddr, *apiAddr)
	override(&cfg.Node.RaftAddr, *raftAddr)
	override(&cfg.Node.RootKeyFile, *rootKeyFile)
	override(&cfg.Node.Join, *join)
	override(&cfg.TLS.Cert, *tlsCert)
	override(&cfg.TLS.Key, *tlsKey)
	override(&cfg.TLS.CA, *tlsCA)
	override(&cfg.API.TLSCert, *apiCert)
	override(&cfg.API.TLSKey, *apiKey)
	override(&cfg.Debug.PprofAddr, *pprofAddr)
	if *nonVoter {
		cfg.Node.NonVoter = true
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	return serve(ctx, cfg, log, stdout, stderr)
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)).With("node", cfg.Node.ID)
	}
	return slog.New(slog.NewTextHandler(w, opts)).With("node", cfg.Node.ID)
}

func serve(ctx context.Context, cfg config, log *slog.Logger, stdout, stderr io.Writer) error {
	dir := cfg.Node.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	root, err := loadRootKey(cfg, log)
	if err != nil {
		return err
	}
	if cfg.Debug.PprofAddr != "" {
		ln, err := net.Listen("tcp", cfg.Debug.PprofAddr)
		if err != nil {
			return fmt.Errorf("listen for the profiler on %s: %w", cfg.Debug.PprofAddr, err)
		}
		log.Warn("serving the profiler; it shows memory and must not be reachable by others", "addr", ln.Addr().String())
		go http.Serve(ln, pprofMux())
	}
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	if cfg.HugePages {
		go collapseHugePages(ctx, log)
	}
	keyring := crypto.NewKeyring(root, cfg.Keyring.Versions)
	archiver, err := cluster.NewArchiver(cluster.DefaultArchiveDir(dir), cfg.Trail.SegmentBytes, log)
	if err != nil {
		return fmt.Errorf("open the trail's segment files: %w", err)
	}
	defer archiver.Close()
	journal, err := trail.OpenJournal(filepath.Join(dir, "journal"), cfg.Trail.JournalSync)
	if err != nil {
		return fmt.Errorf("open the trail journal: %w", err)
	}
	defer journal.Close()
	machine := fsm.New(fsm.Config{
		OnDestroy:     func(ids []string) { keyring.Forget(ids...) },
		OnRestore:     func() { keyring.Clear(); archiver.OnRestore() },
		OnTrail:       archiver.OnTrail,
		BeforePersist: archiver.Sync,
	})
	archiver.SetFSM(machine)
	authKey, err := root.Derive("cluster-auth")
	if err != nil {
		return err
	}
	joining := cfg.Node.Join != "" && !hasRaftState(dir)
	tlsServer, tlsClient, err := clusterTLS(cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA)
	if err != nil {
		return err
	}
	if tlsServer == nil {
		log.Warn("traffic between nodes is not encrypted (it is still authenticated by the root key): give --tls-cert, --tls-key and --tls-ca outside a trusted network")
	}
	apiTLSConfig, err := apiTLS(cfg.API.TLSCert, cfg.API.TLSKey)
	if err != nil {
		return err
	}
	node, err := cluster.New(cluster.Config{
		NodeID: cfg.Node.ID, DataDir: dir, RaftAddr: cfg.Node.RaftAddr, Bootstrap: cfg.Node.Join == "", AuthKey: authKey,
		TLSServer: tlsServer, TLSClient: tlsClient,
		Lease: cfg.Cluster.Lease, ClockDrift: cfg.Cluster.ClockDrift,
		HeartbeatTimeout: cfg.Raft.HeartbeatTimeout, ElectionTimeout: cfg.Raft.ElectionTimeout,
		SnapshotInterval: cfg.Raft.SnapshotInterval, SnapshotThreshold: cfg.Raft.SnapshotThreshold,
		TrailingLogs: cfg.Raft.TrailingLogs, LogStore: cfg.Raft.LogStore, Logger: log, LogOutput: stderr, TrailSource: archiver.Source,
	}, machine)
	if err != nil {
		return err
	}
	defer node.Close()
	archiver.Start(ctx, node)
	engine, err := policy.New(policy.Config{CacheSize: cfg.Policy.CacheSize})
	if err != nil {
		return err
	}
	srv, err := api.New(api.Config{
		Region: cfg.Region, TimestampWindow: cfg.API.TimestampWindow, NonceMemory: cfg.API.NonceMemory,
		WriteTimeout: cfg.API.WriteTimeout, MaxRequestBytes: cfg.API.MaxRequestBytes, Logger: log, SpoolDir: dir,
		NodeID: cfg.Node.ID, Trail: api.TrailConfig{BatchRecords: cfg.Trail.BatchRecords, Flushers: cfg.Trail.Flushers, Linger: cfg.Trail.Linger,
			Retention: fsm.Retention{MaxRecords: cfg.Trail.WindowRecords, MaxAge: int64(cfg.Trail.WindowAge)},
			Commit:    api.TrailCommit(cfg.Trail.Commit), ShipInterval: cfg.Trail.ShipInterval},
	}, api.Deps{State: machine, Snapshots: machine, Proposer: node, Node: node, Authorizer: engine, Wrapper: root,
		Keyring: keyring, Trail: archiver, Journal: journal})
	if err != nil {
		return err
	}
	// The API listens at once and answers 503 (and /readyz "not ready")
	// until the node serves: a restarted member may wait a long time for a
	// quorum, and operators should see that, not a refused connection.
	ln, err := net.Listen("tcp", cfg.Node.APIAddr)
	if err != nil {
		return fmt.Errorf("listen for the API on %s: %w", cfg.Node.APIAddr, err)
	}
	scheme := "http"
	if apiTLSConfig != nil {
		ln, scheme = tls.NewListener(ln, apiTLSConfig), "https"
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	defer srv.Shutdown(context.Background())

	if joining {
		if err := joinCluster(ctx, node, cfg, tlsClient, log); err != nil {
			return err
		}
	}
	if err := waitReady(ctx, node, log); err != nil {
		return nil // interrupted while waiting: a clean exit
	}
	credsPath := filepath.Join(dir, "root-credentials.json")
	if cfg.Node.Join == "" {
		if _, err := srv.EnsureRootAccount(ctx, "root", func(id, secret string) error {
			return writeCredentials(credsPath, id, secret)
		}); err != nil {
			return fmt.Errorf("create the root account: %w", err)
		}
	}
	srv.Open()
	maintCtx, stopMaint := context.WithCancel(ctx)
	defer stopMaint()
	go srv.RunMaintenance(maintCtx, cfg.Maintenance.Interval)
	log.Info("serving", "api", scheme+"://"+ln.Addr().String(), "raft", cfg.Node.RaftAddr, "data_dir", dir, "cluster_tls", tlsServer != nil)
	if cfg.Node.Join == "" {
		printBanner(stdout, scheme+"://"+ln.Addr().String(), credsPath)
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("API server stopped: %w", err)
	}
	log.Info("shutting down")
	stopMaint()
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("API shutdown", "err", err)
	}
	if err := node.Close(); err != nil {
		return fmt.Errorf("close raft: %w", err)
	}
	log.Info("stopped cleanly")
	return nil
}

// loadRootKey finds the root key: RAFTKMS_ROOT_KEY, then the configured
// file, then DATA-DIR/root.key — created on first start of a new node.
func loadRootKey(cfg config, log *slog.Logger) (*crypto.RootKey, error) {
	if v := os.Getenv(rootKeyEnv); v != "" {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s is not base64", rootKeyEnv)
		}
		defer clear(b)
		return crypto.NewRootKey(b)
	}
	path := filepath.Join(cfg.Node.DataDir, "root.key")
	if cfg.Node.RootKeyFile != "" {
		root, err := crypto.LoadRootKeyFile(cfg.Node.RootKeyFile)
		if err != nil {
			return nil, err
		}
		// A node that joins keeps the cluster's root key in its data
		// directory, so it restarts from the directory alone.
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && cfg.Node.Join != "" {
			if err := crypto.CopyRootKeyFile(cfg.Node.RootKeyFile, path); err != nil {
				return nil, err
			}
			log.Info("copied the cluster's root key into the data directory", "path", path)
		}
		return root, nil
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if cfg.Node.Join != "" {
			return nil, fmt.Errorf("joining a cluster needs its root key: pass --root-key-file (or %s)", rootKeyEnv)
		}
		if hasRaftState(cfg.Node.DataDir) {
			return nil, fmt.Errorf("%s is missing but the data directory holds Raft state: restore the root key file (or pass --root-key-file)", path)
		}
		if err := crypto.CreateRootKeyFile(path); err != nil {
			return nil, err
		}
		log.Warn("created a new root key: back it up — without it nothing in this cluster can be decrypted", "path", path)
	}
	return crypto.LoadRootKeyFile(path)
}

// joinCluster asks the node at cfg.Node.Join (an API URL) for its cluster
// address and joins through it.
func joinCluster(ctx context.Context, node *cluster.Node, cfg config, tlsClient *tls.Config, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var st cluster.Status
	for {
		var err error
		if st, err = fetchStatus(ctx, cfg.Node.Join, tlsClient); err == nil {
			break
		}
		log.Warn("cannot reach the node to join; retrying", "url", cfg.Node.Join, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("join %s: %w", cfg.Node.Join, err)
		case <-time.After(time.Second):
		}
	}
	log.Info("joining", "via", cfg.Node.Join, "raft_addr", st.RaftAddr, "voter", !cfg.Node.NonVoter)
	return node.Join(ctx, st.RaftAddr, !cfg.Node.NonVoter)
}

// fetchStatus reads a member's /status. An https URL is checked against
// the cluster CA when TLS between nodes is on, else the system's CAs.
func fetchStatus(ctx context.Context, apiURL string, tlsClient *tls.Config) (cluster.Status, error) {
	var st cluster.Status
	hc := http.Client{}
	if tlsClient != nil {
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tlsClient.RootCAs, MinVersion: tls.VersionTLS12}}
	}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(apiURL, "/")+"/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil || st.RaftAddr == "" {
		return st, fmt.Errorf("%s/status did not describe a raftkms node (%v)", apiURL, err)
	}
	return st, nil
}

// waitReady waits, as long as it takes, until the node serves: a leader
// elected (which needs a quorum of the members) and this node caught up.
func waitReady(ctx context.Context, node *cluster.Node, log *slog.Logger) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := node.WaitReady(wctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		st := node.Status()
		log.Warn("not serving yet: waiting for a leader and a lease (a restarted cluster needs a quorum of its members up)",
			"role", st.Role, "leader", st.Leader, "term", st.Term)
	}
}

func hasRaftState(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "raft", "raft.db"))
	return err == nil
}

// writeCredentials writes the root AccessKey with mode 0600, atomically.
func writeCredentials(path, id, secret string) error {
	b, err := json.MarshalIndent(map[string]string{"AccessKeyId": id, "AccessKeySecret": secret}, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func printBanner(w io.Writer, url, creds string) {
	addr := url[strings.Index(url, "://")+3:]
	fmt.Fprintf(w, `
raftkms is ready at %[3]s  (root credentials: %[2]s)

  kmsctl:   bin/kmsctl --credentials %[2]s create-key --description "orders db"
            (or export ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET from that file)
  Go SDKs:  classic  client.Domain = "%[1]s"  (scheme HTTP)
            v3       openapi.Config{Endpoint: tea.String("%[1]s"), Protocol: tea.String("http")}
  Stop with Ctrl-C (SIGTERM shuts down cleanly).

`, addr, creds, url)
}

// pprofMux serves net/http/pprof's handlers (and nothing else).
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
