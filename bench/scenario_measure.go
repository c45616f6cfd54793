package bench

import (
	"context"
	"fmt"
	"time"
)

// env is one run in progress: a started target, backend and client. It is
// used by the controlling goroutine only.
type env struct {
	ctx     context.Context
	cfg     Config
	n       int
	spec    *scenario
	target  Target
	backend *Backend
	client  *Client
	res     *Result
	rest    ProcSample // the proxy before any session opened
}

// drainTimeout bounds the wait for bytes in flight once senders stop.
const drainTimeout = 20 * time.Second

// open starts ss and waits until each is open or failed.
func (e *env) open(ss []Session) {
	e.client.Open(ss)
	want := int64(len(ss))
	e.client.WaitFor(e.cfg.OpenTimeout, func(t Totals) bool {
		return t.Started >= want && t.Started == t.Live+t.Ended()
	})
}

// verify checks that data flows on every open echo session (websockify
// upgrades sessions it then drops); those without an echo fail.
func (e *env) verify() {
	e.client.Verify()
	e.client.WaitFor(10*time.Second, func(t Totals) bool { return t.Verifying == 0 })
	e.client.FailUnverified()
}

// phase is the measured phase: d of wall time, the proxy's and the client's
// CPU over it, and count's growth over the same span (bytes, sessions);
// count may be nil.
func (e *env) phase(d time.Duration, count func() int64) int64 {
	if count == nil {
		count = func() int64 { return 0 }
	}
	t0, n0 := time.Now(), count()
	p0, c0 := TreeCPU(e.target.PID()), e.client.CPUSeconds()
	select {
	case <-time.After(d):
	case <-e.ctx.Done():
	}
	p1, c1 := TreeCPU(e.target.PID()), e.client.CPUSeconds()
	n1 := count()
	e.res.Seconds = time.Since(t0).Seconds()
	e.res.ProxyCPUSeconds = p1 - p0
	e.res.ClientCPUSeconds = c1 - c0
	return n1 - n0
}

// warmUp lets streams fill the buffers along the way before the measured
// phase, so that a short phase measures the steady rate, not the ramp.
func (e *env) warmUp() {
	select {
	case <-time.After(min(e.cfg.Duration/4, 500*time.Millisecond)):
	case <-e.ctx.Done():
	}
}

func (e *env) received() int64 { return e.client.Totals().Received }

// memory records the proxy's footprint now, against its footprint at rest.
func (e *env) memory() {
	s := SampleTree(e.target.PID())
	r := e.res
	r.ProxyRSSBytes, r.ProxyPSSBytes, r.ProxyFDs = s.RSSBytes, s.PSSBytes, s.FDs
	if live := e.client.Totals().Live; live > 0 {
		r.RSSPerSession = float64(s.RSSBytes-e.rest.RSSBytes) / float64(live)
		r.PSSPerSession = float64(s.PSSBytes-e.rest.PSSBytes) / float64(live)
	}
}

// drain waits for the bytes in flight (balanced) and notes in the result
// when they did not all arrive in time.
func (e *env) drain(counts func() (a, b int64)) {
	if !balanced(drainTimeout, counts) {
		a, b := counts()
		e.res.Errors = append(e.res.Errors, fmt.Sprintf("bytes in flight never all arrived after the senders stopped: %d sent, %d received", a, b))
	}
	e.res.BytesSent, e.res.BytesReceived = counts()
}

// balanced waits until both counts agree and hold still for 50 ms; it
// gives up after timeout, or when neither count moved for 2 s (bytes of a
// session the proxy dropped never arrive).
func balanced(timeout time.Duration, counts func() (a, b int64)) bool {
	const settle, stall, poll = 50 * time.Millisecond, 2 * time.Second, 10 * time.Millisecond
	deadline, moved := time.Now().Add(timeout), time.Now()
	var lastA, lastB int64 = -1, -1
	for time.Now().Before(deadline) && time.Since(moved) < stall {
		a, b := counts()
		if a != lastA || b != lastB {
			moved, lastA, lastB = time.Now(), a, b
		} else if a == b && time.Since(moved) >= settle {
			return true
		}
		time.Sleep(poll)
	}
	return false
}

// echoBalance: everything the clients sent has come back.
func (e *env) echoBalance() (int64, int64) {
	t := e.client.Totals()
	return t.Sent, t.Received
}

func (e *env) throughput(bytes int64) {
	r := e.res
	if r.Seconds > 0 {
		r.MBps = float64(bytes) / 1e6 / r.Seconds
		r.MBpsPerSession = r.MBps / float64(e.n)
	}
	if bytes > 0 {
		r.ProxyCPUSecPerGB = r.ProxyCPUSeconds / (float64(bytes) / 1e9)
	}
}

func measureHold(e *env) error {
	e.open(e.spec.sessions(e.cfg.Params, e.n))
	e.verify()
	e.phase(e.cfg.Duration, nil)
	e.memory()
	e.drain(e.echoBalance)
	return nil
}

func measureEcho(e *env) error {
	e.open(e.spec.sessions(e.cfg.Params, e.n))
	rate := e.cfg.Params.EchoRate
	if max := e.cfg.Params.EchoMaxTotal; max > 0 && rate*float64(e.n) > max {
		rate = max / float64(e.n)
	}
	e.res.Params["rate_per_session"] = ftoa(rate)
	e.client.StartPacing(rate)
	e.phase(e.cfg.Duration, nil)
	e.client.StopPacing()
	e.memory()
	e.drain(e.echoBalance)
	return nil
}

func measureStreamDown(e *env) error {
	e.open(e.spec.sessions(e.cfg.Params, e.n))
	e.backend.StartSending()
	e.warmUp()
	e.throughput(e.phase(e.cfg.Duration, e.received))
	e.backend.Quiesce() // before reading memory: that takes seconds over hundreds of processes
	e.memory()
	counts := func() (int64, int64) { return e.backend.Sent(), e.client.Totals().Received }
	e.drain(counts)
	return nil
}

func measureStreamUp(e *env) error {
	e.open(e.spec.sessions(e.cfg.Params, e.n))
	e.client.SetStream(true)
	e.warmUp()
	e.throughput(e.phase(e.cfg.Duration, e.backend.Received))
	e.client.SetStream(false)
	e.memory()
	counts := func() (int64, int64) { return e.client.Totals().Sent, e.backend.Received() }
	e.drain(counts)
	return nil
}

func measureChurn(e *env) error {
	e.client.SetChurn(true)
	e.client.Open(e.spec.sessions(e.cfg.Params, e.n))
	closed := e.phase(e.cfg.Duration, func() int64 { return e.client.Totals().Closed })
	e.client.SetChurn(false)
	if e.res.Seconds > 0 {
		e.res.SessionsPerSecond = float64(closed) / e.res.Seconds
	}
	e.client.WaitFor(drainTimeout, func(t Totals) bool { return t.Started == t.Ended() })
	e.res.BytesSent, e.res.BytesReceived = e.echoBalance()
	return nil
}

func measureMixed(e *env) error {
	e.open(e.spec.sessions(e.cfg.Params, e.n))
	e.client.StartPacing(e.cfg.Params.TypingRate)
	e.backend.StartSending()
	e.warmUp()
	e.throughput(e.phase(e.cfg.Duration, e.received))
	e.client.StopPacing()
	e.backend.Quiesce()
	e.memory()
	counts := func() (int64, int64) {
		t := e.client.Totals()
		return t.Sent + e.backend.sent[ModeRFB].Load(), t.Received
	}
	e.drain(counts)
	return nil
}
