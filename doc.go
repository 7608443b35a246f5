// Package raftkms is a Raft-replicated Key Management Service that speaks
// the Alibaba Cloud KMS API. This package holds no code: it documents the
// layout and guards it (imports_test.go keeps the import rules of
// docs/ARCHITECTURE.md true).
//
//	cmd/kmsd     daemon: flags and config file, wires everything
//	cmd/kmsctl   command line over api/client
//	api          fasthttp server: routes, signatures, error table, handlers
//	api/client   Go client (V3 signing)
//	api/sign     the two Alibaba request-signature algorithms
//	api/replay   the nonce replay filter
//	cluster      hashicorp/raft: bootstrap, propose, status
//	fsm          the deterministic replicated state machine
//	crypto       root key, ciphertext format, AAD, key backends
//	policy       OPA Rego decisions with a cache
package raftkms
