package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/raftkms/raftkms/api/client"
)

// clients returns a Go client per endpoint.
func clients(cfg *Config) ([]*client.Client, error) {
	var out []*client.Client
	for _, e := range cfg.Endpoints {
		c, err := client.New(client.Config{Endpoint: e, Credentials: cfg.Credentials, TLS: cfg.TLS, Timeout: 30 * time.Second})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// parallel runs fn(i) for i in [0, n) on up to workers goroutines and
// returns the first error.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	var (
		next  atomic.Int64
		first error
		once  sync.Once
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// CreateKeys creates n keys (described "kmsbench") and returns their ids,
// writing each to w (one a line) as it is made when w is not nil.
func CreateKeys(ctx context.Context, cfg Config, n int, w io.Writer) (List, error) {
	cs, err := clients(&cfg)
	if err != nil {
		return List{}, err
	}
	ids := make([]string, n)
	var mu sync.Mutex
	err = parallel(ctx, n, max(cfg.Concurrency, 1), func(ctx context.Context, i int) error {
		m, err := cs[i%len(cs)].CreateKey(ctx, "kmsbench")
		if err != nil {
			return fmt.Errorf("bench: creating key %d of %d: %w", i+1, n, err)
		}
		ids[i] = m.KeyID
		if w != nil {
			mu.Lock()
			defer mu.Unlock()
			_, err = fmt.Fprintln(w, m.KeyID)
		}
		return err
	})
	return NewList(ids...), err
}

// ReadKeys reads key ids, one a line, from a file CreateKeys wrote.
func ReadKeys(path string) (List, error) {
	f, err := os.Open(path)
	if err != nil {
		return List{}, err
	}
	defer f.Close()
	var ids List
	if st, err := f.Stat(); err == nil && st.Size() < 1<<32 {
		ids.buf = make([]byte, 0, st.Size()) // a bound: the file holds newlines too
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if id := bytes.TrimSpace(sc.Bytes()); len(id) > 0 {
			ids.Append(string(id))
		}
	}
	if ids.Len() == 0 && sc.Err() == nil {
		return List{}, fmt.Errorf("bench: %s holds no key ids", path)
	}
	return ids, sc.Err()
}

// MakeBlobs returns n ciphertexts of data keys made under keys (with the
// run's encryption context), for decrypt and re-encrypt runs.
func MakeBlobs(ctx context.Context, cfg Config, n int) (List, error) {
	cs, err := clients(&cfg)
	if err != nil {
		return List{}, err
	}
	var ec map[string]string
	if cfg.EncryptionContext != "" {
		if err := json.Unmarshal([]byte(cfg.EncryptionContext), &ec); err != nil {
			return List{}, fmt.Errorf("bench: --encryption-context is not a JSON object of strings: %v", err)
		}
	}
	blobs := make([]string, n)
	err = parallel(ctx, n, max(cfg.Concurrency, 1), func(ctx context.Context, i int) error {
		dk, err := cs[i%len(cs)].GenerateDataKey(ctx, cfg.KeyIDs.At(i%cfg.KeyIDs.Len()), max(cfg.DataKeyBytes, 1), ec)
		if err != nil {
			return fmt.Errorf("bench: making ciphertexts to decrypt: %w", err)
		}
		blobs[i] = dk.CiphertextBlob
		return nil
	})
	return NewList(blobs...), err
}

// scrapeAll reads metrics (plain gauges or counters, no labels) from each
// target's /metrics, once per target: out[target][i] is names[i]'s value.
// NaN-free: a target that does not answer, or lacks a metric, gives 0.
func scrapeAll(targets []*target, names ...string) [][]float64 {
	out := make([][]float64, len(targets))
	for i, t := range targets {
		out[i] = make([]float64, len(names))
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(strings.TrimSuffix(t.url, "/") + "/metrics")
		req.SetHost(t.host)
		if err := t.metrics.DoTimeout(req, resp, 5*time.Second); err == nil && resp.StatusCode() == 200 {
			for j, name := range names {
				out[i][j] = metricValue(resp.Body(), name)
			}
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	return out
}

// metricValue finds "name value" in Prometheus text format.
func metricValue(body []byte, name string) float64 {
	for _, line := range bytes.Split(body, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
			v, err := strconv.ParseFloat(string(bytes.TrimSpace(rest)), 64)
			if err == nil {
				return v
			}
		}
	}
	return 0
}

// progress prints a line a second while a run goes on; the returned
// function stops it.
func progress(w io.Writer, measureFrom, end time.Time, ok *atomic.Int64) func() {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case now := <-t.C:
				n := ok.Load()
				phase := fmt.Sprintf("measuring, %ds left", int(time.Until(end).Seconds()+0.5))
				if now.Before(measureFrom) {
					phase = fmt.Sprintf("warming up, %ds left", int(time.Until(measureFrom).Seconds()+0.5))
				}
				fmt.Fprintf(w, "\r\033[K%s: %d requests/s, %d answered", phase, n-last, n)
				last = n
			}
		}
	}()
	return func() { close(done); <-stopped }
}
