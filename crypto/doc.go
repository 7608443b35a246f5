// Package crypto holds raftkms's key hierarchy and formats: the root key that
// wraps every secret before it enters the Raft log, the symmetric
// CiphertextBlob layout, the EncryptionContext → AAD encoding, data keys, and
// the KeyBackend interface that software keys (here) and HSM keys (package
// hsm) implement.
//
// Nothing in this package reads cluster state, the network or configuration:
// it is pure cryptography over bytes, so every other package may depend on it
// and it depends on none of ours.
package crypto
