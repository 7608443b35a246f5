// Command kmsd is the raftkms daemon: one node of a Raft-replicated Key
// Management Service that speaks the Alibaba Cloud KMS API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kmsd:", err)
		os.Exit(1)
	}
}

// usage is printed by --help.
const usage = `kmsd — a node of raftkms, a Raft-replicated KMS speaking the Alibaba Cloud KMS API.

Usage:
  kmsd [--config FILE] [--data-dir DIR] [--node-id ID] [--api-addr HOST:PORT]
       [--raft-addr HOST:PORT] [--root-key-file FILE]

With an empty data directory kmsd bootstraps a one-node cluster, creates a
root key (DIR/root.key, unless --root-key-file or RAFTKMS_ROOT_KEY gives one)
and the root account, whose AccessKey it writes to DIR/root-credentials.json.
Flags override the configuration file (see docs/CONFIG.md).

Flags:
`
