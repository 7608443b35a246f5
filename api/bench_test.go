package api

import (
	"context"
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/raftkms/raftkms/api/sign"
)

// benchHandle measures the server's handling of one signed request, in
// process and without a network: request parsing, V3 signature check,
// replay filter, policy decision (cached), key lookup, cryptography and the
// JSON reply. Requests are signed ahead, outside the timer, in batches
// (every request needs a fresh nonce).
func benchHandle(b *testing.B, action string, setup func(tn *testNode) map[string]string) {
	tn := startTestNode(b)
	params := setup(tn)
	host := tn.url[len("http://"):]
	q := kvs(params)
	uri := tn.url + "/?" + string(sign.AppendQuery(nil, q))
	const batch = 4096
	reqs := make([]fasthttp.Request, batch)
	sign1 := func(r *fasthttp.Request) {
		r.Reset()
		r.Header.SetMethod("POST")
		r.SetRequestURI(uri)
		for _, h := range sign.SignV3(tn.creds.AccessKeyID, tn.creds.AccessKeySecret,
			sign.V3Request{Method: "POST", Host: host, Action: action, Version: KMSVersion, Query: q}) {
			r.Header.SetBytesKV(h.Key, h.Value)
		}
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%batch == 0 {
			b.StopTimer()
			for j := range reqs {
				sign1(&reqs[j])
			}
			b.StartTimer()
		}
		ctx.Response.Reset()
		ctx.Init(&reqs[i%batch], addr, nil)
		tn.srv.Handle(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("%s: %d %s", action, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

func BenchmarkHandleGenerateDataKey(b *testing.B) {
	benchHandle(b, "GenerateDataKey", func(tn *testNode) map[string]string {
		return map[string]string{"KeyId": tn.createKey(b)}
	})
}

func BenchmarkHandleDecrypt(b *testing.B) {
	benchHandle(b, "Decrypt", func(tn *testNode) map[string]string {
		dk, err := tn.cli.GenerateDataKey(context.Background(), tn.createKey(b), 32, map[string]string{"table": "orders"})
		if err != nil {
			b.Fatal(err)
		}
		return map[string]string{"CiphertextBlob": dk.CiphertextBlob, "EncryptionContext": `{"table":"orders"}`}
	})
}

// BenchmarkHandleGenerateDataKeyParallel is GenerateDataKey from 64
// concurrent requests, so the trail's group commit is measured: every
// request waits for its record to commit through Raft (one fsync per batch,
// not per request). Signing each request is inside the timer here.
func BenchmarkHandleGenerateDataKeyParallel(b *testing.B) {
	tn := startTestNode(b)
	q := kvs(map[string]string{"KeyId": tn.createKey(b)})
	host := tn.url[len("http://"):]
	uri := tn.url + "/?" + string(sign.AppendQuery(nil, q))
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var req fasthttp.Request
		var ctx fasthttp.RequestCtx
		addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
		for pb.Next() {
			req.Reset()
			req.Header.SetMethod("POST")
			req.SetRequestURI(uri)
			for _, h := range sign.SignV3(tn.creds.AccessKeyID, tn.creds.AccessKeySecret,
				sign.V3Request{Method: "POST", Host: host, Action: "GenerateDataKey", Version: KMSVersion, Query: q}) {
				req.Header.SetBytesKV(h.Key, h.Value)
			}
			ctx.Response.Reset()
			ctx.Init(&req, addr, nil)
			tn.srv.Handle(&ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
	})
}
