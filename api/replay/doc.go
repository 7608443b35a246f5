// Package replay rejects replayed signed requests.
//
// A signed request carries an AccessKeyId, a client-chosen nonce (opaque
// bytes; the SDKs send 32 hex characters) and a signed timestamp. A Filter
// accepts a timestamp only within ±Window (default 15 minutes) of the server
// clock and rejects an (AccessKeyId, nonce) pair it has already accepted
// while a request carrying it could still be replayed.
//
// # Buckets keyed by signed timestamp
//
// Pairs are grouped by their signed timestamp truncated to the minute, not by
// arrival time. The timestamp is covered by the signature, so a replay carries
// the same timestamp as the original and each Check probes exactly one bucket,
// whenever the replay arrives. The bucket for minute M can be dropped once
// M+1min+Window < now: every timestamp in it is then rejected as too old.
// Live buckets therefore span about 2*Window+2 minutes; they sit in a fixed
// ring of 2*ceil(Window/1min)+3 slots indexed by minute mod ring size, each
// slot an atomic pointer to a bucket tagged with its minute. A slot holding an
// expired minute is replaced when a request needs it, and at most once per
// second (of the now values passed to Check) all slots are swept so expired
// buckets release their memory even without traffic to their slot.
//
// The filter keeps a floor, the lowest minute not yet expired according to the
// latest now seen. A bucket is dropped only after the floor has passed its
// minute, and Check refuses minutes below the floor with ErrTimestamp, so a
// caller whose clock lags slightly behind another's can never recreate a
// dropped bucket and accept a replay. With callers' clocks agreeing to within
// a minute this affects only timestamps at the very edge of the window.
//
// # Fingerprint tables
//
// A bucket stores 64-bit fingerprints: hash/maphash, with a random seed per
// Filter, over the length of the AccessKeyId, the AccessKeyId and the nonce
// (a fingerprint of 0 is mapped to 1, because 0 marks an empty slot). Each
// bucket is split into 64 shards chosen by the top 6 fingerprint bits; each
// shard has its own mutex and open-addressing table with linear probing,
// indexed by the low bits, starting at 64 slots and doubling when it would
// pass 3/4 load. Contention on the hot path is therefore negligible, and Check
// does not allocate in the steady state (table growth and one bucket per
// minute excepted). Check never retains the caller's byte slices.
//
// # False positives
//
// A fresh pair is wrongly rejected as a replay only if its fingerprint equals
// one of the n fingerprints already stored in the same bucket, which happens
// with probability about n/2^64 per check: about 3e-13 for a bucket holding
// 6M entries (one minute at 100k requests/s). Replays themselves are always
// detected while their bucket is live: there are no false negatives.
//
// # Memory
//
// Each table slot takes 8 bytes. Tables run between 3/8 and 3/4 full, so a
// stored nonce costs 8/0.75 ≈ 10.7 to 8/0.375 ≈ 21.3 bytes depending on where
// each table is in its growth cycle, times the number of requests accepted
// over the live span (about 2*Window+2 minutes of signed timestamps; with
// timestamps close to the server clock, about Window+2 minutes of traffic).
// At 100k requests/s and a 15-minute window that is roughly 100M nonces, or
// about 1.1–2.2 GB at the extremes, so such a server needs MaxBytes above the
// default; a growing table briefly holds its old and new arrays (the
// accounting includes both). Config.MaxBytes (default 1 GiB) caps the bytes
// of all tables,
// as reported by Stats.Bytes; an insert that would need more fails closed
// with ErrFull instead of forgetting nonces, and the server should answer it
// with a retryable "service busy" error. Each live bucket also has about
// 4 KiB of fixed overhead, not counted in MaxBytes.
package replay
