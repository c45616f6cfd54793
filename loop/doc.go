//go:build linux

// Package loop is the gnet reactor of consoleproxy: it accepts browser
// WebSocket connections, parses the upgrade in place, applies the access
// policy (Origin, token, reuse), hands the blocking work (token lookup, DNS)
// to a fixed worker pool with a bounded queue, and relays frames to the
// compute-host sockets that package relay owns (and connects).
//
// Session states: handshaking → authorizing → relaying → closed. Everything
// a session does on the client's side runs on its gnet event loop; relay's
// pollers and the worker pool talk to it only through gnet's concurrency-safe
// calls (AsyncWrite, Execute, Wake, Close) and atomics.
package loop
