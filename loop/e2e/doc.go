//go:build linux

// Package e2e holds consoleproxy's black-box end-to-end tests: a raw
// WebSocket client written for the tests, real TCP backends on loopback, and
// the proxy either in process (loop.Server) or as the real binary.
package e2e
