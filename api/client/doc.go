// Package client is the Go client of raftkms: it signs requests with
// AccessKey V3 (ACS3-HMAC-SHA256), keeps connections alive, and decodes
// responses and Alibaba-style errors. kmsctl, the bench harness and the
// Jepsen harness use it; so can applications.
//
// Call reaches every action by name; the typed methods cover envelope
// encryption.
package client
