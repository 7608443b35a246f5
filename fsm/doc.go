// Package fsm is raftkms's replicated state machine: the versioned binary
// command codec, Apply, Snapshot and Restore, and the read-only State that
// every node serves the fast path from.
//
// Apply is deterministic. Everything that varies — time, ids, random key
// material (already wrapped by the root key) — is stamped into the command
// before it reaches Raft; Apply never reads the clock, randomness, the HSM
// or the network. Two nodes that apply the same log hold byte-identical
// snapshots, which a test checks.
//
// State is immutable once published: Apply builds the next State with
// copy-on-write B-trees and swaps a pointer, so readers take no lock and a
// snapshot is a pointer capture.
package fsm
