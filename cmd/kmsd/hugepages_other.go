//go:build !linux

package main

import (
	"context"
	"log/slog"
)

// collapseHugePages does nothing outside Linux (hugepages_linux.go).
func collapseHugePages(context.Context, *slog.Logger) {}
