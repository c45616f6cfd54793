//go:build linux

package relay

import (
	"context"
	"errors"
	"time"
)

// Target is a compute host to open a console socket to, with everything
// the steps toward it need.
type Target struct {
	// Host and Port are the compute host's (the token's record).
	Host string
	Port int
	// AccessPath is the record's internal_access_path: when set, a CONNECT
	// request for it goes to the host before any console byte (Check).
	AccessPath *string
	// Dial is the allow-list, the resolver, the keepalive and the forward
	// proxy (--compute-proxy), whose CONNECT comes first.
	Dial DialConfig
	// Deadline bounds every step from the DNS lookup on (--connect-timeout
	// from the start of the dial).
	Deadline time.Time
	// Security, when set, runs the RFB security handshake once the host has
	// sent its greeting (relay/rfb); nil relays the host's bytes as they are.
	Security Securer
	// Poller is the index of the poller that runs the steps (as
	// Relay.Poller): with driven pollers, the one the caller's goroutine
	// drives, so that done runs there. Negative or out of range: the next
	// poller in turn. (The zero value is poller 0.)
	Poller int
	// OnDriver says Open is called on the goroutine that drives poller
	// Poller (driven pollers): the connect starts at once, not through the
	// poller's command queue (a connect that fails at once then runs done
	// inside Open's own call, Polled false).
	OnDriver bool
}

// Securer runs the compute host's side of the RFB security handshake (and
// VeNCrypt's TLS handshake within it). relay/rfb's Proxy is one, through
// the caller's adapter.
type Securer interface {
	// GreetingLen is how many bytes the host sends first (RFB's
	// ProtocolVersion); Open awaits them on a poller before Secure.
	GreetingLen() int
	// Secure takes over fd, a connected non-blocking socket whose first
	// bytes are first, and must not block: done runs once, on any
	// goroutine, with the socket to attach (tls non-nil for VeNCrypt's TLS)
	// or an error (the socket is closed).
	Secure(fd int, first []byte, host string, deadline time.Time, done func(fd int, tls *TLSClient, err error))
}

// Opened is a compute host's socket, ready for Attach (TLS nil) or
// AttachTLS.
type Opened struct {
	// Fd is the connected non-blocking socket, the caller's.
	Fd int
	// First is the console bytes that came with the last CONNECT answer (a
	// slice the caller owns; nil if none, and always nil once a Securer
	// ran: they were its).
	First []byte
	// TLS is VeNCrypt's TLS client over Fd; nil without one.
	TLS *TLSClient
	// Secured says a Securer ran: the client's side of the RFB security
	// handshake is the caller's to play.
	Secured bool
	// Polled says done runs inside Poll, on the goroutine that drives the
	// poller (Target.Poller, driven pollers): the caller may go on with the
	// socket there at once, StartOnDriver included.
	Polled bool
}

// Step names one step of Open, in order.
type Step uint8

const (
	// StepResolve is the DNS lookup and the allow-list (ErrTargetRefused,
	// ErrUnreachable), and Check (ErrBadHost, ErrBadAccessPath); no socket
	// is opened.
	StepResolve Step = iota
	// StepConnect is the TCP connect, to the host or to the forward proxy
	// (ErrUnreachable).
	StepConnect
	// StepProxyCONNECT is the forward proxy's CONNECT exchange.
	StepProxyCONNECT
	// StepCONNECT is internal_access_path's CONNECT exchange with the host.
	StepCONNECT
	// StepGreeting is the wait for the host's first bytes (Securer only).
	StepGreeting
	// StepSecurity is the Securer's RFB security handshake.
	StepSecurity
)

// OpenError is how Open failed and at which step. Unwrap gives the cause:
// one of this package's Err* values for the steps up to StepCONNECT (see
// tunnelError), the relay's closing for StepGreeting, the Securer's error
// for StepSecurity.
type OpenError struct {
	Step Step
	// Proxy is set when the step was toward the forward proxy (its connect
	// or its CONNECT).
	Proxy bool
	Err   error
}

func (e *OpenError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *OpenError) Unwrap() error { return e.Err }

// Check reports whether t's CONNECT request can be written safely
// (ErrBadAccessPath, ErrBadHost), without any socket: a record that could
// inject bytes never causes a connection. It allocates nothing.
func (t Target) Check() error {
	if t.AccessPath == nil {
		return nil
	}
	return checkConnect(*t.AccessPath, t.Host, t.Port)
}

// connectRequest is t's internal_access_path CONNECT request, nil without
// one.
func (t Target) connectRequest() ([]byte, error) {
	if t.AccessPath == nil {
		return nil, nil
	}
	return AppendConnect(nil, *t.AccessPath, t.Host, t.Port)
}

// Open is the one way to a compute host's socket. On the calling goroutine
// it checks t (Check) and resolves the host within ctx and t.Deadline
// (StepResolve; DNS may block, so call it from a worker); an error there is
// returned, no socket is opened and done is never called. The rest runs on a
// relay poller, with no goroutine waiting: the connect (TCP), the forward
// proxy's CONNECT, internal_access_path's CONNECT, and with t.Security the
// host's greeting and the RFB security handshake, all within t.Deadline.
// done runs once, on a poller goroutine or the Securer's, and must not
// block: with the socket, or with an *OpenError (the socket is closed).
func (r *Relay) Open(ctx context.Context, t Target, done func(Opened, error)) error {
	req, err := t.connectRequest()
	if err != nil {
		return &OpenError{Step: StepResolve, Err: err}
	}
	// The resolve is bounded by what is left of t.Deadline: resolveRoute
	// makes the one deadline context, and only when DNS may block.
	dial := t.Dial
	dial.Timeout = max(time.Until(t.Deadline), time.Nanosecond)
	rt, err := resolveRoute(ctx, t.Host, t.Port, dial)
	if err != nil {
		return &OpenError{Step: StepResolve, Err: err}
	}
	timeout := time.Until(t.Deadline)
	if timeout <= 0 {
		return &OpenError{Step: StepConnect, Proxy: rt.viaProxy(), Err: ErrUnreachable}
	}
	var requests [][]byte
	if req != nil {
		requests = [][]byte{req}
	}
	p := r.pick(t.Poller)
	r.openRoute(rt, requests, timeout, p, t.OnDriver, func(fd int, first []byte, err error) {
		if err != nil {
			done(Opened{Fd: -1, Polled: p.polling}, openingError(err, rt.viaProxy()))
			return
		}
		if t.Security == nil {
			done(Opened{Fd: fd, First: first, Polled: p.polling}, nil)
			return
		}
		r.secure(fd, first, t, done)
	})
	return nil
}

// openingError names the step an opening failed at: the connect, or the
// CONNECT at its index (the forward proxy's first).
func openingError(err error, viaProxy bool) *OpenError {
	var te *tunnelError
	step := 0
	if errors.As(err, &te) {
		step, err = te.step, te.err
	}
	e := &OpenError{Step: StepCONNECT, Proxy: viaProxy && step == 0, Err: err}
	switch {
	case errors.Is(err, ErrUnreachable):
		e.Step = StepConnect
	case e.Proxy:
		e.Step = StepProxyCONNECT
	}
	return e
}

// secure awaits the host's greeting on a poller (a host that never speaks
// holds no goroutine), then hands the socket to t.Security. Poller
// goroutine: does not block.
func (r *Relay) secure(fd int, first []byte, t Target, done func(Opened, error)) {
	r.await(fd, first, t.Security.GreetingLen(), t.Deadline, t.Poller, func(fd int, first []byte, err error) {
		if err != nil { // the relay is closing; fd is closed
			done(Opened{Fd: -1}, &OpenError{Step: StepGreeting, Err: err})
			return
		}
		t.Security.Secure(fd, first, t.Host, t.Deadline, func(fd int, tls *TLSClient, err error) {
			if err != nil {
				done(Opened{Fd: -1}, &OpenError{Step: StepSecurity, Err: err})
				return
			}
			done(Opened{Fd: fd, TLS: tls, Secured: true}, nil)
		})
	})
}
