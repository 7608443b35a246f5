//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/raftkms/raftkms/api"
	"github.com/raftkms/raftkms/api/client"
	"github.com/raftkms/raftkms/trail"
)

// exportTrail runs `kmsctl trail export` against k (as the system root,
// whose credentials are in creds) and returns the records, checked.
func exportTrail(t *testing.T, k *kmsd, creds string) (path string, recs []trail.Record) {
	t.Helper()
	path, recs, err := tryExportTrail(t, k, creds)
	if err != nil {
		t.Fatal(err)
	}
	return path, recs
}

// tryExportTrail is exportTrail returning its failure.
func tryExportTrail(t *testing.T, k *kmsd, creds string) (path string, recs []trail.Record, err error) {
	path = filepath.Join(t.TempDir(), "trail.jsonl")
	if _, stderr, code := k.kmsctl(nil, "--credentials", creds, "trail", "export", "--output", path); code != 0 {
		return "", nil, fmt.Errorf("kmsctl trail export: exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	for i, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r trail.Record
		if err := json.Unmarshal(line, &r); err != nil {
			return "", nil, fmt.Errorf("line %d of the export: %v", i+1, err)
		}
		recs = append(recs, r)
	}
	return path, recs, nil
}

// requestID returns the RequestId a call was answered with.
func requestID(t *testing.T, body []byte, err error) string {
	t.Helper()
	var ae *client.Error
	if errors.As(err, &ae) {
		return ae.RequestID
	}
	if err != nil {
		t.Fatal(err)
	}
	var r struct{ RequestId string }
	json.Unmarshal(body, &r)
	return r.RequestId
}

func byRequest(recs []trail.Record) map[string][]trail.Record {
	m := map[string][]trail.Record{}
	for _, r := range recs {
		m[r.RequestID] = append(m[r.RequestID], r)
	}
	return m
}

func param(r trail.Record, name string) string {
	for _, p := range r.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// TestEveryRequestLeavesExactlyOneRecordAndNoSecret calls every action of
// both API versions, and the envelope-encryption calls with real secrets,
// then reads the trail back through kmsctl: one record per request, with
// the right fields, and no secret in the trail, the segment files or
// anywhere else on disk.
func TestEveryRequestLeavesExactlyOneRecordAndNoSecret(t *testing.T) {
	k := startKMSD(t, t.TempDir())
	c := k.client()
	ctx := context.Background()
	creds := k.credentials()
	const canary = "PLAINTEXT-CANARY-7f3a91"

	body, err := c.Call(ctx, "CreateKey", map[string]string{"Description": "orders", "Tags": `[{"TagKey":"env","TagValue":"dev"}]`})
	createID := requestID(t, body, err)
	var ck struct{ KeyMetadata struct{ KeyId string } }
	json.Unmarshal(body, &ck)
	keyID := ck.KeyMetadata.KeyId
	body, err = c.Call(ctx, "GenerateDataKey", map[string]string{"KeyId": keyID, "EncryptionContext": `{"tenant":"acme"}`})
	gdkID := requestID(t, body, err)
	var dk struct{ Plaintext, CiphertextBlob, KeyVersionId string }
	json.Unmarshal(body, &dk)
	body, err = c.Call(ctx, "Encrypt", map[string]string{"KeyId": keyID, "Plaintext": canary})
	encID := requestID(t, body, err)
	body, err = c.Call(ctx, "Decrypt", map[string]string{"CiphertextBlob": dk.CiphertextBlob, "EncryptionContext": `{"tenant":"acme"}`})
	decID := requestID(t, body, err)
	_, err = c.Call(ctx, "Decrypt", map[string]string{"CiphertextBlob": dk.CiphertextBlob})
	failedID := requestID(t, nil, err)

	own(t, c, "CreateUser", map[string]string{"UserName": "app"}, nil)
	var ak struct{ AccessKeyId, AccessKeySecret string }
	own(t, c, "CreateAccessKey", map[string]string{"UserName": "app"}, &ak)
	_, err = k.clientWith(client.Credentials{AccessKeyID: ak.AccessKeyId, AccessKeySecret: ak.AccessKeySecret}).
		Call(ctx, "GenerateDataKey", map[string]string{"KeyId": keyID})
	deniedID := requestID(t, nil, err)

	// Every action once, most of them refused for a missing parameter.
	ids := map[string]string{} // request id → action
	for _, version := range []string{api.KMSVersion, api.OwnVersion} {
		for _, action := range api.Actions(version) {
			switch action {
			case "SaveClusterSnapshot", "ExportTrail": // streamed replies: checked by name below
				if err := c.Download(ctx, version, action, nil, discard{}); err != nil {
					t.Fatalf("%s: %v", action, err)
				}
				continue
			}
			body, err := c.CallVersion(ctx, version, action, nil)
			ids[requestID(t, body, err)] = action
		}
	}

	path, recs := exportTrail(t, k, k.credentialsFile())
	reqs := byRequest(recs)
	for id, action := range ids {
		if n := len(reqs[id]); n != 1 || reqs[id][0].EventName != action {
			t.Errorf("%s (request %s): %d records", action, id, n)
		}
	}
	names := map[string]bool{}
	for _, r := range recs {
		names[r.EventName] = true
	}
	for _, version := range []string{api.KMSVersion, api.OwnVersion} {
		for _, action := range api.Actions(version) {
			if !names[action] {
				t.Errorf("no record of %s", action)
			}
		}
	}

	one := func(id, what string) trail.Record {
		t.Helper()
		if len(reqs[id]) != 1 {
			t.Fatalf("%s (request %s): %d records", what, id, len(reqs[id]))
		}
		return reqs[id][0]
	}
	g := one(gdkID, "GenerateDataKey")
	if g.EventName != "GenerateDataKey" || g.KeyID != keyID || g.KeyVersionID != dk.KeyVersionId || g.Outcome != trail.Success ||
		g.Account == "" || g.PrincipalType != "root" || g.AccessKeyID != creds.AccessKeyID || g.SourceIP != "127.0.0.1" ||
		g.Node != "node1" || g.UserAgent == "" || !strings.HasSuffix(g.ResourceARN, ":key/"+keyID) ||
		param(g, "EncryptionContext") != `{"tenant":"acme"}` || param(g, "KeyId") != keyID || g.Time == 0 || g.CommitTime < g.Time {
		t.Errorf("GenerateDataKey record = %+v", g)
	}
	if r := one(createID, "CreateKey"); r.EventName != "CreateKey" || r.KeyID != keyID || param(r, "Description") != "orders" {
		t.Errorf("CreateKey record = %+v", r)
	}
	if r := one(encID, "Encrypt"); param(r, "Plaintext") != "" || r.KeyVersionID == "" {
		t.Errorf("Encrypt record = %+v", r)
	}
	if r := one(decID, "Decrypt"); r.Outcome != trail.Success || r.KeyID != keyID || r.KeyVersionID != dk.KeyVersionId || param(r, "CiphertextBlob") != "" {
		t.Errorf("Decrypt record = %+v", r)
	}
	if r := one(failedID, "failed Decrypt"); r.Outcome != trail.Failed || r.ErrorCode != "InvalidCiphertext" {
		t.Errorf("failed Decrypt record = %+v", r)
	}
	if r := one(deniedID, "denied GenerateDataKey"); r.Outcome != trail.Denied || r.ErrorCode != "Forbidden.NoPermission" ||
		r.PrincipalType != "user" || r.PrincipalName != "app" || r.AccessKeyID != ak.AccessKeyId {
		t.Errorf("denied record = %+v", r)
	}

	// No secret anywhere: not in the export, the segment files, the Raft
	// log or the snapshots.
	raw, _ := base64.StdEncoding.DecodeString(dk.Plaintext)
	secrets := map[string][]byte{"the Encrypt plaintext": []byte(canary), "a data key (base64)": []byte(dk.Plaintext),
		"a data key": raw, "an AccessKey secret": []byte(ak.AccessKeySecret), "the root's AccessKey secret": []byte(creds.AccessKeySecret)}
	files := filesUnder(t, filepath.Dir(path))
	k.stop() // flush everything to disk
	for name, b := range filesUnder(t, k.dir) {
		files[name] = b
	}
	assertNoSecrets(t, files, secrets)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestTrailTamperingIsNamedAtTheRecord edits, removes and reorders lines of
// an export: kmsctl trail verify exits 1 and names the first bad record.
func TestTrailTamperingIsNamedAtTheRecord(t *testing.T) {
	k := startKMSD(t, t.TempDir())
	c := k.client()
	id := k.createKey(t)
	for range 8 {
		if _, err := c.GenerateDataKey(context.Background(), id, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	creds := k.credentialsFile()
	path, recs := exportTrail(t, k, creds)
	if _, stderr, code := k.kmsctl(nil, "--credentials", creds, "trail", "verify", "--file", path); code != 0 {
		t.Fatalf("an intact export: exit %d: %s", code, stderr)
	}
	if out, stderr, code := k.kmsctl(nil, "--credentials", creds, "trail", "verify"); code != 0 || !strings.Contains(out, `"Verified": true`) {
		t.Fatalf("the cluster's trail: exit %d: %s %s", code, out, stderr)
	}
	lines := strings.Split(strings.TrimSpace(mustRead(t, path)), "\n")
	if len(lines) != len(recs) || len(lines) < 8 {
		t.Fatalf("%d lines", len(lines))
	}
	cases := []struct {
		name string
		edit func([]string) []string
		want string
	}{
		{"a denied call made to look allowed", func(l []string) []string {
			l[4] = strings.Replace(l[4], `"Outcome":"success"`, `"Outcome":"denied"`, 1)
			return l
		}, "line 5, seq 5: the record's content does not match its hash"},
		{"a record removed", func(l []string) []string { return append(l[:6:6], l[7:]...) }, "line 7, seq 7: records 7 to 7 are missing"},
		{"a record repeated", func(l []string) []string { return append(l[:4:4], append([]string{l[2]}, l[4:]...)...) }, "line 5, seq 3"},
		{"another node's name", func(l []string) []string {
			l[1] = strings.Replace(l[1], `"Node":"node1"`, `"Node":"node9"`, 1)
			return l
		}, "line 2, seq 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.jsonl")
			os.WriteFile(bad, []byte(strings.Join(tc.edit(append([]string(nil), lines...)), "\n")+"\n"), 0o600)
			_, stderr, code := k.kmsctl(nil, "--credentials", creds, "trail", "verify", "--file", bad)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 1 naming %q", code, stderr, tc.want)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lookup runs kmsctl lookup-events as creds and returns the events.
func lookup(t *testing.T, k *kmsd, creds string, args ...string) (events []trail.Record, next string) {
	t.Helper()
	out, stderr, code := k.kmsctl(nil, append([]string{"--credentials", creds, "lookup-events"}, args...)...)
	if code != 0 {
		t.Fatalf("kmsctl lookup-events %v: exit %d: %s", args, code, stderr)
	}
	var r struct {
		Events    []json.RawMessage
		NextToken string
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	for _, e := range r.Events {
		var rec trail.Record
		if err := json.Unmarshal(e, &rec); err != nil {
			t.Fatal(err)
		}
		events = append(events, rec)
	}
	return events, r.NextToken
}

// TestLookupEventsAnswersWhoUsedWhichKey filters the trail through kmsctl:
// by key, action, outcome, user and time, a page at a time, and only within
// the caller's account.
func TestLookupEventsAnswersWhoUsedWhichKey(t *testing.T) {
	k := startKMSD(t, t.TempDir())
	ctx := context.Background()
	sys := k.credentialsFile()
	var acct struct{ AccountId, AccessKeyId, AccessKeySecret string }
	own(t, k.client(), "CreateAccount", map[string]string{"AccountName": "acme"}, &acct)
	acmeCreds := client.Credentials{AccessKeyID: acct.AccessKeyId, AccessKeySecret: acct.AccessKeySecret}
	acmeFile := filepath.Join(t.TempDir(), "acme.json")
	b, _ := json.Marshal(acct)
	os.WriteFile(acmeFile, b, 0o600)
	acme := k.clientWith(acmeCreds)
	m, err := acme.CreateKey(ctx, "acme's")
	if err != nil {
		t.Fatal(err)
	}
	own(t, acme, "CreateUser", map[string]string{"UserName": "app"}, nil)
	var ak struct{ AccessKeyId, AccessKeySecret string }
	own(t, acme, "CreateAccessKey", map[string]string{"UserName": "app"}, &ak)
	app := k.clientWith(client.Credentials{AccessKeyID: ak.AccessKeyId, AccessKeySecret: ak.AccessKeySecret})
	start := time.Now().UTC()
	for range 3 {
		acme.GenerateDataKey(ctx, m.KeyID, 0, nil)
	}
	app.GenerateDataKey(ctx, m.KeyID, 0, nil) // denied: no policy
	sysKey := k.createKey(t)                  // the system account's own key

	evs, _ := lookup(t, k, acmeFile, "--key-id", m.KeyID, "--event-name", "GenerateDataKey")
	if len(evs) != 4 {
		t.Fatalf("acme's GenerateDataKey records: %d, want 4", len(evs))
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq >= evs[i-1].Seq {
			t.Fatal("events are not newest first")
		}
	}
	if evs, _ := lookup(t, k, acmeFile, "--outcome", "denied"); len(evs) != 1 || evs[0].PrincipalName != "app" || evs[0].ErrorCode != "Forbidden.NoPermission" {
		t.Fatalf("denied records = %+v", evs)
	}
	if evs, _ := lookup(t, k, acmeFile, "--user-name", "app"); len(evs) != 1 {
		t.Fatalf("app's records: %d", len(evs))
	}
	if evs, _ := lookup(t, k, acmeFile, "--start-time", start.Add(time.Hour).Format(time.RFC3339)); len(evs) != 0 {
		t.Fatalf("records from the future: %d", len(evs))
	}
	if evs, _ := lookup(t, k, acmeFile, "--key-id", m.KeyID, "--end-time", start.Add(-time.Millisecond).Format(time.RFC3339Nano)); len(evs) != 1 || evs[0].EventName != "CreateKey" {
		t.Fatalf("records before the data keys: %+v", evs)
	}
	// Pages.
	var seen []uint64
	next := ""
	for page := 0; page < 10; page++ {
		args := []string{"--key-id", m.KeyID, "--page-size", "2"}
		if next != "" {
			args = append(args, "--next-token", next)
		}
		evs, n := lookup(t, k, acmeFile, args...)
		for _, e := range evs {
			seen = append(seen, e.Seq)
		}
		if next = n; next == "" {
			break
		}
	}
	if len(seen) != 5 { // CreateKey and four GenerateDataKey
		t.Fatalf("paged through %d records of the key, want 5: %v", len(seen), seen)
	}
	// Isolation: acme does not see the system account's records; the
	// system root sees everyone's.
	if evs, _ := lookup(t, k, acmeFile, "--key-id", sysKey); len(evs) != 0 {
		t.Fatalf("acme sees %d records of another account's key", len(evs))
	}
	if evs, _ := lookup(t, k, sys, "--account-id", acct.AccountId, "--outcome", "denied"); len(evs) != 1 {
		t.Fatalf("the system root sees %d of acme's denied records", len(evs))
	}
	_, stderr, code := k.kmsctl(nil, "--credentials", acmeFile, "lookup-events", "--account-id", "1")
	if code != 1 || !strings.HasPrefix(stderr, "Forbidden.NoPermission") {
		t.Fatalf("acme reading another account: exit %d %s", code, stderr)
	}
	_, stderr, code = k.kmsctl(nil, "--credentials", acmeFile, "trail", "export", "--output", filepath.Join(t.TempDir(), "x"))
	if code != 1 || !strings.HasPrefix(stderr, "Forbidden.NoPermission") {
		t.Fatalf("acme exporting the cluster's trail: exit %d %s", code, stderr)
	}
}

// TestTrailWindowMovesToSegmentsAndSnapshotsStayBounded keeps a window of
// 100 records in the replicated state under a load of thousands: every
// record stays findable and verifiable (from the segment files), and the
// snapshots stay small.
func TestTrailWindowMovesToSegmentsAndSnapshotsStayBounded(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(t.TempDir(), "kmsd.yaml")
	os.WriteFile(conf, []byte("version: v1\ntrail:\n  window_records: 100\nraft:\n  snapshot_interval: 200ms\n  snapshot_threshold: 256\n  trailing_logs: 64\n"), 0o600)
	k := startKMSD(t, dir, "--config", conf)
	c := k.client()
	id := k.createKey(t)
	const total = 3000
	var n atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n.Add(1) <= total {
				if _, err := c.GenerateDataKey(context.Background(), id, 0, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	snapshots := func() (sizes []int64) {
		files, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil {
				sizes = append(sizes, fi.Size())
			}
		}
		return sizes
	}
	eventually(t, 20*time.Second, "a snapshot taken after the load", func() error {
		if len(snapshots()) == 0 {
			return errors.New("no snapshot yet")
		}
		return nil
	})
	for _, size := range snapshots() {
		// 100 records of about 600 bytes and a few keys: far below the
		// megabytes 3000 records take.
		if size > 256<<10 {
			t.Errorf("a snapshot of %d bytes: the trail window is not bounded", size)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "trail", "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segment files")
	}
	_, recs := exportTrail(t, k, k.credentialsFile())
	if len(recs) < total+1 || recs[0].Seq != 1 {
		t.Fatalf("the export holds %d records from seq %d, want all %d from 1", len(recs), recs[0].Seq, total+1)
	}
	if evs, _ := lookup(t, k, k.credentialsFile(), "--event-name", "CreateKey"); len(evs) != 1 || evs[0].KeyID != id {
		t.Fatalf("the oldest record, long out of the window: %+v", evs)
	}
	// After a restart the segment files and the snapshot still make one chain.
	k.stop()
	k.start()
	if out, stderr, code := k.kmsctl(nil, "--credentials", k.credentialsFile(), "trail", "verify"); code != 0 {
		t.Fatalf("after a restart: exit %d: %s %s", code, out, stderr)
	}
}

// TestClusterTrailKeepsEveryAcknowledgedRequestOnce loads all three nodes,
// kills the leader with SIGKILL in the middle, and reads the trail back:
// every request that was answered with success has exactly one record, no
// request has two, and the chain verifies — on every node, the restarted
// one included.
// TestClusterFollowerAnswersWithoutARaftRoundTrip: a follower writes its
// requests' records to its own journal and answers; the records reach the
// replicated trail after. With the leader frozen (SIGSTOP), the follower
// still answers while its lease lasts, and once the leader wakes every
// record is in the trail, once.
func TestClusterFollowerAnswersWithoutARaftRoundTrip(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.leader(20 * time.Second)
	f := c.followers(leader)[0]
	cli := c.client(f)
	ctx := context.Background()
	m, err := c.client(leader).CreateKey(ctx, "no-round-trip")
	if err != nil {
		t.Fatal(err)
	}
	// The first use of a key version reserves its encryption budget (a
	// write); the calls after it need nothing from the leader.
	if _, err := cli.GenerateDataKey(ctx, m.KeyID, 32, nil); err != nil {
		t.Fatal(err)
	}
	var reqs []string
	leader.signal(syscall.SIGSTOP)
	for range 5 {
		callCtx, cancel := context.WithTimeout(ctx, time.Second)
		body, err := cli.Call(callCtx, "GenerateDataKey", map[string]string{"KeyId": m.KeyID})
		cancel()
		if err != nil {
			leader.signal(syscall.SIGCONT)
			t.Fatalf("the follower did not answer with its leader frozen: %v", err)
		}
		var r struct{ RequestId string }
		json.Unmarshal(body, &r)
		reqs = append(reqs, r.RequestId)
	}
	leader.signal(syscall.SIGCONT)
	eventually(t, 30*time.Second, "the follower's records in the trail", func() error {
		_, recs, err := tryExportTrail(t, f, c.nodes[0].credentialsFile())
		if err != nil {
			return err
		}
		got := byRequest(recs)
		for _, r := range reqs {
			if len(got[r]) != 1 {
				return fmt.Errorf("request %s has %d records", r, len(got[r]))
			}
		}
		return nil
	})
}

func TestClusterTrailKeepsEveryAcknowledgedRequestOnce(t *testing.T) {
	c := startCluster(t, 3)
	first := c.nodes[0]
	id := first.createKey(t)
	leader := c.leader(20 * time.Second)

	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	deadline := time.Now().Add(30 * time.Second)
	for _, k := range c.nodes {
		cli := c.client(k)
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 2000 && time.Now().Before(deadline); i++ {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					body, err := cli.Call(ctx, "GenerateDataKey", map[string]string{"KeyId": id})
					cancel()
					if err != nil {
						continue // the killed node, or an election: not acknowledged
					}
					var r struct{ RequestId string }
					json.Unmarshal(body, &r)
					mu.Lock()
					acked = append(acked, r.RequestId)
					mu.Unlock()
				}
			}()
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	eventually(t, 20*time.Second, "load before the kill", func() error {
		if count() < 300 {
			return fmt.Errorf("%d acknowledged", count())
		}
		return nil
	})
	leader.kill()
	before := count()
	eventually(t, 30*time.Second, "load after the kill", func() error {
		if count() < before+300 {
			return fmt.Errorf("%d acknowledged since the kill", count()-before)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	leader.start()

	survivor := c.followers(leader)[0]
	creds := first.credentialsFile()
	if first == leader {
		// The restarted node still has the file.
		creds = leader.credentialsFile()
	}
	// The killed node's journal held records of requests it answered just
	// before the kill; it ships them once it is back. Until then they may
	// be missing — never twice.
	var recs []trail.Record
	eventually(t, 60*time.Second, "every acknowledged request's record", func() error {
		var err error
		if _, recs, err = tryExportTrail(t, survivor, creds); err != nil {
			return err
		}
		reqs := byRequest(recs)
		for id, rs := range reqs {
			if len(rs) != 1 {
				t.Fatalf("request %s has %d records", id, len(rs))
			}
		}
		missing := 0
		for _, id := range acked {
			if len(reqs[id]) == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d acknowledged requests have no record", missing, len(acked))
		}
		return nil
	})
	t.Logf("%d acknowledged requests, %d records, all present once", len(acked), len(recs))
	last := recs[len(recs)-1]
	// Every node, the restarted one too, holds the same chain.
	for _, k := range c.nodes {
		eventually(t, 30*time.Second, "node "+k.id+" verifies the same chain", func() error {
			out, stderr, code := k.kmsctl(nil, "--credentials", creds, "trail", "verify")
			if code != 0 {
				return fmt.Errorf("exit %d: %s", code, stderr)
			}
			var s struct {
				FirstSeq, LastSeq uint64
			}
			json.Unmarshal([]byte(out), &s)
			if s.FirstSeq != 1 || s.LastSeq < last.Seq {
				return fmt.Errorf("verified %d..%d", s.FirstSeq, s.LastSeq)
			}
			return nil
		})
	}
}

// TestJoiningNodeFetchesTheRecordsThatLeftTheWindow: a node that joins
// after records have left the replicated window gets them from the others,
// so its own trail is whole from seq 1 — with either Raft log store (the
// joiner starts from a snapshot: compacted entries are gone in both).
func TestJoiningNodeFetchesTheRecordsThatLeftTheWindow(t *testing.T) {
	for _, store := range []string{"boltdb", "wal"} {
		t.Run(store, func(t *testing.T) { joiningNodeGetsTheRecordsThatLeftTheWindow(t, store) })
	}
}

func joiningNodeGetsTheRecordsThatLeftTheWindow(t *testing.T, store string) {
	conf := filepath.Join(t.TempDir(), "kmsd.yaml")
	// Records committed one request at a time (quorum), so 400 requests
	// make 400 entries and the log compacts.
	os.WriteFile(conf, []byte("version: v1\ntrail:\n  window_records: 50\n  commit: quorum\nraft:\n  log_store: "+store+"\n  snapshot_interval: 200ms\n  snapshot_threshold: 128\n  trailing_logs: 32\n"), 0o600)
	c := startCluster(t, 2, "--config", conf)
	first := c.nodes[0]
	id := first.createKey(t)
	cli := c.client(first)
	for range 400 {
		if _, err := cli.GenerateDataKey(context.Background(), id, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Until the log is compacted a joiner would replay it and fetch nothing.
	eventually(t, 30*time.Second, "the first node compacted its log", func() error {
		if st, ok := first.status(); !ok || st.First <= 60 {
			return fmt.Errorf("its log starts at %d", st.First)
		}
		return nil
	})
	joiner := newNode(t, "node3", nodeIP(3), filepath.Join(t.TempDir(), "node3"),
		"--join", first.url(), "--root-key-file", filepath.Join(first.dir, "root.key"), "--config", conf)
	joiner.start()
	eventually(t, 30*time.Second, "the new node's trail is whole", func() error {
		out, stderr, code := joiner.kmsctl(nil, "--credentials", first.credentialsFile(), "trail", "verify")
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, stderr)
		}
		var s struct{ FirstSeq, LastSeq, Records uint64 }
		json.Unmarshal([]byte(out), &s)
		if s.FirstSeq != 1 || s.Records < 401 {
			return fmt.Errorf("verified %d records from %d", s.Records, s.FirstSeq)
		}
		return nil
	})
	if segs, _ := filepath.Glob(filepath.Join(joiner.dir, "trail", "*.seg")); len(segs) < 2 {
		t.Fatalf("the new node holds %d segment files, want the fetched ones and its own", len(segs))
	}
}

// own calls one of raftkms's own actions and decodes the reply.
func own(t *testing.T, c *client.Client, action string, params map[string]string, out any) {
	t.Helper()
	b, err := c.CallVersion(context.Background(), api.OwnVersion, action, params)
	if err != nil {
		t.Fatalf("%s: %v", action, err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
}

// createKey creates a key through k as the system root.
func (k *kmsd) createKey(t *testing.T) string {
	t.Helper()
	m, err := k.client().CreateKey(context.Background(), "test key")
	if err != nil {
		t.Fatal(err)
	}
	return m.KeyID
}
