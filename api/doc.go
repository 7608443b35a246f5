// Package api serves the Alibaba Cloud KMS OpenAPI (RPC style, version
// 2016-01-20) over fasthttp: the route table, both request-signature
// schemes, the error table, and one handler per action.
//
// A handler reads like its use case: authenticate → authorise → resolve
// the key → check its state → cryptography → reply. Reads and cryptography
// are served from the node's local replica of the state (fsm.State) with no
// Raft round trip; state changes are encoded as fsm commands and proposed
// through the Proposer the package declares. The package consumes the rest
// of the system through small interfaces declared here (Proposer,
// StateReader, Authorizer, Node), so tests can wire real parts in-process.
package api
