//go:build linux

// Package loop is the gnet reactor of consoleproxy: it accepts browser
// WebSocket connections, parses the upgrade in place, applies the access
// policy (Origin, token, reuse), hands the blocking work (token lookup, DNS)
// to a fixed worker pool with a bounded queue, and relays frames to the
// compute-host sockets that package relay opens and owns (relay.Open).
//
// Words: the "upgrade" is the client's WebSocket handshake (handshake.go,
// the handshaking state); the "TLS handshake" is crypto/tls's with the
// client (tlshs.go); toward the compute host, "connect" is the TCP connect,
// "CONNECT" the HTTP tunnel of a forward proxy or internal_access_path, and
// the "RFB security handshake" relay/rfb's (security.go plays the client's
// side of it). relay.OpenError's Step names each host-side one.
//
// Session states: handshaking → authorizing → relaying → closed. Everything
// a session does on the client's side runs on its gnet event loop, and so
// do its host socket's callbacks: each loop drives the relay poller that
// holds its sessions' host sockets (Server.drivePoller). The worker pool,
// the TLS handshakers, the sweeper and revocations talk to a session only
// through gnet's concurrency-safe calls (AsyncWrite, Execute, Wake, Close)
// and atomics.
package loop
