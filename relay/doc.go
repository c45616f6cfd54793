//go:build linux

// Package relay owns the compute-host side of console sessions: dialing with
// a timeout and an address allow-list, and the host sockets themselves, which
// live on a small fixed set of epoll pollers of this package (not on gnet's
// loops) so that reading a host can be paused. That is how a slow browser
// pushes back on a fast compute host through TCP flow control instead of the
// proxy buffering without bound (DECISIONS.md, "backpressure").
//
// Token stores, which turn a console token into a host, are in relay/tokens.
package relay
