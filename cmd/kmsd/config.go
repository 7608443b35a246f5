package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/raftkms/raftkms/api"
	"github.com/raftkms/raftkms/cluster"
	"github.com/raftkms/raftkms/crypto"
)

// config is the kmsd configuration file (YAML, version v1), decoded
// strictly: an unknown field is an error, not a silent default.
type config struct {
	Version string `yaml:"version"`
	Node    struct {
		ID          string `yaml:"id"`
		DataDir     string `yaml:"data_dir"`
		APIAddr     string `yaml:"api_addr"`
		RaftAddr    string `yaml:"raft_addr"`
		RootKeyFile string `yaml:"root_key_file"`
		Join        string `yaml:"join"`      // API URL of a member: join its cluster
		NonVoter    bool   `yaml:"non_voter"` // join as a read replica
	} `yaml:"node"`
	Cluster struct {
		Lease      time.Duration `yaml:"lease"`       // follower lease length (D)
		ClockDrift float64       `yaml:"clock_drift"` // bound on clock-rate error between nodes (ε)
	} `yaml:"cluster"`
	TLS struct {
		Cert string `yaml:"cert"` // this node's certificate for mutual TLS between nodes
		Key  string `yaml:"key"`
		CA   string `yaml:"ca"` // CA certificates that sign the nodes' certificates
	} `yaml:"tls"`
	Region string `yaml:"region"`
	API    struct {
		TLSCert         string        `yaml:"tls_cert"` // serve the API over TLS
		TLSKey          string        `yaml:"tls_key"`
		TimestampWindow time.Duration `yaml:"timestamp_window"`
		NonceMemory     int64         `yaml:"nonce_memory_bytes"`
		WriteTimeout    time.Duration `yaml:"write_timeout"`
		MaxRequestBytes int           `yaml:"max_request_bytes"`
	} `yaml:"api"`
	Raft struct {
		HeartbeatTimeout  time.Duration `yaml:"heartbeat_timeout"`
		ElectionTimeout   time.Duration `yaml:"election_timeout"`
		SnapshotInterval  time.Duration `yaml:"snapshot_interval"`
		SnapshotThreshold uint64        `yaml:"snapshot_threshold"`
		TrailingLogs      uint64        `yaml:"trailing_logs"`
		LogStore          string        `yaml:"log_store"` // wal or boltdb; empty: what the data dir holds, wal if new
	} `yaml:"raft"`
	Policy struct {
		CacheSize int `yaml:"cache_size"`
	} `yaml:"policy"`
	Keyring struct {
		Versions int `yaml:"versions"` // unwrapped key versions kept in memory (about 1 KiB each)
	} `yaml:"keyring"`
	// MemoryLimit is a soft limit on the Go heap (as GOMEMLIMIT); 0: none.
	MemoryLimit int64 `yaml:"memory_limit_bytes"`
	// HugePages collapses resident memory into huge pages in the
	// background (hugepages_linux.go).
	HugePages   bool `yaml:"huge_pages"`
	Maintenance struct {
		Interval time.Duration `yaml:"interval"`
	} `yaml:"maintenance"`
	Trail struct {
		WindowRecords uint64        `yaml:"window_records"` // records the replicated state keeps
		WindowAge     time.Duration `yaml:"window_age"`     // and for how long at most
		SegmentBytes  int64         `yaml:"segment_bytes"`  // size of a segment file before the next starts
		BatchRecords  int           `yaml:"batch_records"`  // records in one Raft entry at most
		Flushers      int           `yaml:"flushers"`       // batches committing at once
		Linger        time.Duration `yaml:"linger"`         // a flusher's wait for records on their way; negative: none
		Commit        string        `yaml:"commit"`         // what a record reaches before its reply: auto, quorum or journal
		JournalSync   bool          `yaml:"journal_sync"`   // fsync the journal before each reply
		ShipInterval  time.Duration `yaml:"ship_interval"`  // between shipments of the journal into the trail; negative: none
	} `yaml:"trail"`
	Debug struct {
		PprofAddr string `yaml:"pprof_addr"` // serve net/http/pprof here; empty: off
	} `yaml:"debug"`
	Log struct {
		Level  string `yaml:"level"`  // debug, info, warn, error
		Format string `yaml:"format"` // text or json
	} `yaml:"log"`
}

func defaultConfig() config {
	var c config
	c.Version = "v1"
	c.Node.ID = "node1"
	c.Node.DataDir = "./data"
	c.Node.APIAddr = "127.0.0.1:8080"
	c.Node.RaftAddr = "127.0.0.1:8081"
	c.Region = "cn-hangzhou"
	c.Cluster.Lease = 2 * time.Second
	c.Cluster.ClockDrift = 0.01
	c.Maintenance.Interval = time.Second
	c.Trail.WindowRecords = 100000
	c.Trail.WindowAge = 24 * time.Hour
	c.Trail.SegmentBytes = 64 << 20
	c.Trail.BatchRecords = 2048
	c.Trail.Flushers = 1
	c.Trail.Commit = string(api.CommitAuto)
	c.Keyring.Versions = crypto.DefaultKeyringVersions
	c.Log.Level = "info"
	c.Log.Format = "text"
	return c
}

// loadConfig reads path over the defaults.
func loadConfig(path string) (config, error) {
	c := defaultConfig()
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, c.validate()
}

func (c config) validate() error {
	if c.Version != "v1" {
		return fmt.Errorf("config: version %q is not supported (want v1)", c.Version)
	}
	switch {
	case c.Node.ID == "":
		return errors.New("config: node.id is empty")
	case c.Node.DataDir == "":
		return errors.New("config: node.data_dir is empty")
	case c.Node.APIAddr == "" || c.Node.RaftAddr == "":
		return errors.New("config: node.api_addr and node.raft_addr are required")
	case c.API.TimestampWindow < 0 || c.API.NonceMemory < 0 || c.API.MaxRequestBytes < 0:
		return errors.New("config: api limits must not be negative")
	case c.Node.NonVoter && c.Node.Join == "":
		return errors.New("config: non_voter needs join: a new cluster's first node votes")
	case c.Cluster.Lease < 0 || c.Cluster.ClockDrift < 0 || c.Cluster.ClockDrift >= 0.5:
		return errors.New("config: cluster.lease must be positive and cluster.clock_drift in [0, 0.5)")
	case c.Raft.LogStore != "" && c.Raft.LogStore != cluster.LogStoreBoltDB && c.Raft.LogStore != cluster.LogStoreWAL:
		return fmt.Errorf("config: raft.log_store %q is not %s or %s", c.Raft.LogStore, cluster.LogStoreBoltDB, cluster.LogStoreWAL)
	case c.Keyring.Versions <= 0 || c.MemoryLimit < 0:
		return errors.New("config: keyring.versions must be positive and memory_limit_bytes not negative")
	case c.Maintenance.Interval <= 0:
		return errors.New("config: maintenance.interval must be positive")
	case c.Trail.WindowRecords == 0 || c.Trail.WindowAge < 0 || c.Trail.SegmentBytes < 1<<20 || c.Trail.BatchRecords <= 0 || c.Trail.Flushers <= 0:
		return errors.New("config: trail.window_records, trail.batch_records and trail.flushers must be positive, trail.window_age not negative, trail.segment_bytes at least 1 MiB")
	case c.Trail.Commit != string(api.CommitAuto) && c.Trail.Commit != string(api.CommitQuorum) && c.Trail.Commit != string(api.CommitJournal):
		return fmt.Errorf("config: trail.commit is %q; want auto, quorum or journal", c.Trail.Commit)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("config: log.format %q is not text or json", c.Log.Format)
	}
	return nil
}
