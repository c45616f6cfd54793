// Package bench is the load-harness library behind cmd/consolebench: it
// drives thousands of console sessions through a WebSocket-to-TCP proxy
// (consoleproxy, websockify, or a plain TCP relay as the reference) and
// reports throughput, latency percentiles and memory per session side by
// side. It is being built under issue 6; until then the proxy's own
// measurements live in loop/e2e (throughput_test.go, scale_test.go).
package bench
