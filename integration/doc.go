// Package integration holds end-to-end tests that start real kmsd
// processes and drive them with kmsctl, the project's Go client and the
// unmodified Alibaba Cloud Go SDKs. They need the build tag integration:
//
//	go test -tags integration ./integration/...
package integration
