// Command kmsctl is the raftkms command line: a subcommand per API action,
// JSON output, Alibaba error codes on failure.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
