//go:build linux

// Package relay owns the compute-host side of console sessions: opening a
// host's socket (Open, the one entry point: DNS and the address allow-list,
// the connect, the forward proxy's and internal_access_path's CONNECTs, the
// RFB security handshake through a Securer), and the host sockets
// themselves (Attach, AttachTLS), which live on a small fixed set of epoll
// pollers of this package (not on gnet's loops) so that reading a host can
// be paused. That is how a slow browser
// pushes back on a fast compute host through TCP flow control instead of the
// proxy buffering without bound (DECISIONS.md, "backpressure").
//
// A poller runs on a goroutine of its own, or, with Config.Driven, on its
// caller's: consoleproxy nests each poller's epoll descriptor in one gnet
// loop's (Relay.Poller, Poller.Fd, Poller.Poll), and a session's sockets
// both go to its loop's poller (Target.Poller, Attach's poller), so the "poller
// goroutine" of the comments below is then that loop's (DECISIONS.md, "A
// session's two sockets on one thread"). Other goroutines reach a poller
// through its command queue and an eventfd; the loop that drives it says so
// (Target.OnDriver, Conn.StartOnDriver, CloseOnDriver, CloseWriteOnDriver)
// and its commands are applied at once, and it learns from Opened.Polled
// that a connect's result reached it inside its own Poll (DECISIONS.md, "A
// session's steps on its own loop, without a command").
//
// Words: "connect" is the TCP connect; "CONNECT" the HTTP CONNECT
// exchange, a tunnel through a forward proxy or the host's
// internal_access_path; "TLS handshake" crypto/tls's (VeNCrypt's leg, in
// hosttls.go); "RFB security handshake" the Securer's (relay/rfb). The
// client's WebSocket "upgrade" is package loop's.
//
// Token stores, which turn a console token into a host, are in relay/tokens.
package relay
