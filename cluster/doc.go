// Package cluster runs Raft for a kmsd node: hashicorp/raft with
// raft-boltdb/v2 as log and stable store and a file snapshot store, the
// bootstrap of a new cluster, and Propose, which stamps the leader's time
// into a command and commits it.
//
// It knows the state machine only as an fsm.FSM and knows nothing of the
// API, policies or the HSM.
package cluster
