package bench

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consoleproxy/consoleproxy/wsframe"
)

// The hostile scenarios: clients that misbehave the way an internet-facing
// proxy meets them. Each run measures the proxy process (RSS, open fds,
// goroutines) before the attack, at its peak and after the clients are
// gone, and fails when the proxy does not come back within
// DefaultTolerance in Params.HostileSettle, when a compute host receives a
// byte no client sent, when a well-behaved client is not served during or
// after the attack, or when the scenario's own promise breaks (an upload
// cut, a small-frame client ended, an upload's bytes not all delivered).
//
// A run: start the backend and the target (its metrics listener on, for
// goroutines; TLS on for tls-silent), warm up with a few probe sessions
// (workers, pollers and buffers the proxy creates on first use are part of
// the baseline), read the baseline once the fds hold still, sample every
// hostileSample through the attack, close every attacking client, settle,
// probe once more.

// hostileSpec is one hostile scenario.
type hostileSpec struct {
	size   int                       // sessions (connections) by default
	mode   Mode                      // the console behind the attack's tokens
	tls    bool                      // needs the target's TLS listener
	pool   func(n int) int           // attack tokens for n sessions
	attack func(h *hostile) error    // opens, attacks for the phase, closes every client
	check  func(h *hostile) []string // the scenario's own failures, after the attack
	// patient keeps the TCP relay's 1 h timeouts: no client resets while
	// it holds bytes, and a short one cuts a slow upload on a loaded machine.
	patient bool
}

// hostileScenarios, in report order.
//
// Default sizes: the scenarios whose proxy-side cost is buffered bytes run
// 10 sessions, so that a proxy bounding them at ~1 MiB each stays within
// DefaultTolerance's 16 MiB of RSS (one unbounded pong flooder alone grows a
// proxy by hundreds of MiB); reset-storm runs waves of 50 (the corruption
// shows in most sessions of a wave); the stalling ones 200 connections.
var hostileScenarios = []*scenario{
	{name: "pong-flood", params: noParams, hostile: &hostileSpec{size: 10, mode: ModeEcho, attack: attackPongFlood}},
	{name: "frame-storm", params: stormParams, hostile: &hostileSpec{size: 10, mode: ModeCheck, attack: attackFrameStorm, check: checkDelivered}},
	{name: "reset-storm", params: resetParams, hostile: &hostileSpec{size: 50, mode: ModeCheck, attack: attackResetStorm, pool: resetPool}},
	{name: "slowloris", params: noParams, hostile: &hostileSpec{size: 200, mode: ModeSink, attack: attackSlowloris}},
	{name: "tls-silent", params: noParams, hostile: &hostileSpec{size: 200, mode: ModeEcho, tls: true, attack: attackTLSSilent}},
	{name: "zero-window", params: streamParamsDown, hostile: &hostileSpec{size: 10, mode: ModeFirehose, attack: attackZeroWindow}},
	{name: "upload-slow-host", params: uploadParams, hostile: &hostileSpec{size: 10, mode: ModeSlowCheck, attack: attackUpload, check: checkDelivered, patient: true}},
}

func stormParams(p Params) map[string]string {
	return map[string]string{"frames_per_write": strconv.Itoa(p.StormFrames), "payload_bytes": "1-2"}
}

func resetParams(p Params) map[string]string {
	return map[string]string{"waves_max": strconv.Itoa(p.ResetWaves), "frames": strconv.Itoa(resetFrames), "pings": strconv.Itoa(resetFrames)}
}

func streamParamsDown(p Params) map[string]string {
	rate := "flat-out"
	if p.StreamRate > 0 {
		rate = strconv.FormatInt(p.StreamRate, 10)
	}
	return map[string]string{"host_rate": rate, "client_rcvbuf": strconv.Itoa(smallRcvBuf)}
}

func uploadParams(p Params) map[string]string {
	return map[string]string{"host_read_rate": strconv.FormatInt(p.SlowHostRate, 10), "frame_bytes": strconv.Itoa(p.FrameSize)}
}

// resetPool: a token comes back only four waves later (exclusive tokens).
func resetPool(n int) int { return 4 * n }

// Bounds and sizes of the hostile clients.
const (
	hostileSample   = 100 * time.Millisecond // resource readings during the attack
	settlePoll      = 100 * time.Millisecond // resource readings while settling (and before the baseline)
	warmupProbes    = 4                      // probe sessions before the baseline
	probeTokens     = warmupProbes + 2       // … plus one during the attack and one after
	openParallel    = 32                     // attack sessions being opened at once
	smallRcvBuf     = 4 << 10                // pong-flood, zero-window: the client's receive buffer
	writeGrace      = 10 * time.Second       // finishing a frame cut by the phase's deadline
	uploadSndBuf    = 64 << 10               // upload-slow-host: the client's send buffer
	floodChunk      = 64 << 10               // pong-flood: bytes of pings per write
	resetFrames     = 32                     // reset-storm: data frames (and as many pings) per session
	resetFrameBytes = 64                     // … payload bytes each
	hostDrainBound  = 30 * time.Second       // waiting for a compute host to read what the clients sent
)

// hostileIdleTimeout is the TCP relay's client and server timeout in
// hostile runs (RunSpec.IdleTimeout), what an edge haproxy would have:
// two thirds of the settle bound, so that a host blocked writing to a client
// that reset is let go within it, and 2–10 s. upload-slow-host keeps the
// 1 h default (hostileSpec.patient): the relay saw no reset there, and a
// loaded machine's slow host can idle past 2 s.
func hostileIdleTimeout(settle time.Duration) time.Duration {
	return min(max(settle*2/3, 2*time.Second), 10*time.Second)
}

// hostile is one hostile run in progress.
type hostile struct {
	ctx     context.Context
	p       Params
	spec    *hostileSpec
	n       int
	phase   time.Duration
	ep      Endpoint
	backend *Backend
	d       *hostileDialer
	attackT func(i int) int // token of attack pool slot i
	probeT  func(k int) int // token of probe k
	nextTok int
	t       tally
	during  error // the probe during the attack
	probed  bool

	// Taken when the attack starts, to read its own share of the backend's
	// cumulative counters (the soak shares one backend).
	recv0    int64
	corrupt0 int
	elapsed  time.Duration
}

func newHostile(ctx context.Context, p Params, spec *hostileSpec, n int, phase time.Duration, ep Endpoint, b *Backend, srcs int) *hostile {
	return &hostile{ctx: ctx, p: p, spec: spec, n: n, phase: phase, ep: ep, backend: b,
		d:       &hostileDialer{ep: ep, srcs: srcs},
		attackT: func(i int) int { return i }, probeT: func(k int) int { return spec.poolSize(n) + k }}
}

// poolSize is the attack tokens a run of n sessions needs.
func (s *hostileSpec) poolSize(n int) int {
	if s.pool != nil {
		return s.pool(n)
	}
	return n
}

// tokens is the console behind each token of a run: the attack's pool,
// then the probes' echo consoles.
func (s *hostileSpec) tokens(n int) []Mode {
	ms := allModes(s.mode)(Params{}, s.poolSize(n))
	return append(ms, allModes(ModeEcho)(Params{}, probeTokens)...)
}

// token is the next attack token (cycling through the pool).
func (h *hostile) token() int {
	t := h.attackT(h.nextTok % h.spec.poolSize(h.n))
	h.nextTok++
	return t
}

// openAll opens n sessions of mode m, openParallel at a time; those that
// fail are counted and left out.
func (h *hostile) openAll(m Mode, n int, o sockOpts) []*net.TCPConn {
	toks := make([]int, n)
	for i := range toks {
		toks[i] = h.token()
	}
	return h.connectAll(n, "open", func(i int) (*net.TCPConn, error) {
		return h.d.open(h.ctx, m, toks[i], o)
	})
}

// connectAll runs open for each of n connections, openParallel at a time;
// those that fail are counted (step names it in the error) and left out.
func (h *hostile) connectAll(n int, step string, open func(i int) (*net.TCPConn, error)) []*net.TCPConn {
	conns := make([]*net.TCPConn, n)
	sem := make(chan struct{}, openParallel)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := open(i)
			if err != nil {
				h.t.openFailed.Add(1)
				h.t.err(step + ": " + errKind(err))
				return
			}
			h.t.opened.Add(1)
			conns[i] = c
		}()
	}
	wg.Wait()
	out := conns[:0]
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// hold runs the during-attack probe (once per run) and then waits until end.
func (h *hostile) hold(end time.Time) {
	h.probeDuring()
	select {
	case <-time.After(time.Until(end)):
	case <-h.ctx.Done():
	}
}

// probeDuring checks, once, that a well-behaved client is served while the
// attack goes on.
func (h *hostile) probeDuring() {
	if h.probed {
		return
	}
	h.probed = true
	h.during = h.d.probe(h.ctx, h.probeT(warmupProbes))
}

// closeAll closes conns (a client that never read its data sends a RST).
func (h *hostile) closeAll(conns []*net.TCPConn) {
	for _, c := range conns {
		c.Close()
		h.t.closed.Add(1)
	}
}

// attackPongFlood: clients send pings (on a TCP relay, bytes to an echo
// console) flat out and never read, with a small receive buffer: every
// answer the proxy owes them piles up on its side.
func attackPongFlood(h *hostile) error {
	conns := h.openAll(ModeEcho, h.n, sockOpts{rcvbuf: smallRcvBuf})
	var buf []byte
	if h.ep.WebSocket {
		ping := make([]byte, 125)
		for len(buf) < floodChunk {
			buf = appendFrame(buf, 9, ping)
		}
	} else {
		buf = make([]byte, floodChunk)
	}
	end := time.Now().Add(h.phase)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetWriteDeadline(end)
			for time.Now().Before(end) {
				n, err := c.Write(buf)
				h.t.offered.Add(int64(n))
				if err != nil {
					if !isTimeout(err) {
						h.t.endedByProxy.Add(1)
						h.t.err("ended by proxy while flooding: " + errKind(err))
					}
					return
				}
			}
		}()
	}
	h.hold(end)
	wg.Wait()
	h.closeAll(conns)
	return nil
}

// stormBuf fills buf with frames tiny frames carrying session id's pattern
// from payload offset off, payloads of 1 and 2 bytes in turn (on a TCP
// relay: the payload alone); it returns the buffer and its payload bytes.
func stormBuf(buf []byte, ws bool, id uint32, off int64, frames int) ([]byte, int64) {
	buf = buf[:0]
	var pay int64
	var p [2]byte
	for i := range frames {
		k := 1 + i%2
		fillPattern(p[:k], id, off+pay)
		if ws {
			buf = appendFrame(buf, 2, p[:k])
		} else {
			buf = append(buf, p[:k]...)
		}
		pay += int64(k)
	}
	return buf, pay
}

// frameEnd is the end of the frame holding byte n of buf, a run of whole
// client frames (n itself at a boundary).
func frameEnd(buf []byte, n int) int {
	off := 0
	for off < n && off+2 <= len(buf) {
		off += wsframe.HeaderLen(buf[off+1]) + int(frameLen(buf[off:]))
	}
	return min(off, len(buf))
}

// writeFrames writes buf (whole frames on WebSocket) until end; a write
// that the deadline cut inside a frame is finished within writeGrace, so
// that the proxy never holds half a frame. It returns the bytes written,
// whether the phase is over, and an error other than the deadline.
func writeFrames(c *net.TCPConn, buf []byte, ws bool, end time.Time) (int, bool, error) {
	c.SetWriteDeadline(end)
	n, err := c.Write(buf)
	if err == nil {
		return n, !time.Now().Before(end), nil
	}
	if !isTimeout(err) {
		return n, true, err
	}
	if ws {
		if fe := frameEnd(buf, n); fe > n {
			c.SetWriteDeadline(time.Now().Add(writeGrace))
			m, err := c.Write(buf[n:fe])
			n += m
			if err != nil {
				return n, true, fmt.Errorf("finishing a frame: %w", err)
			}
		}
	}
	return n, true, nil
}

// streamer runs one data-sending client: a watcher that notices when the
// proxy ends the session, and a writer filling and writing buffers until
// the phase ends. It returns when the writer is done; stop then ends the
// session politely and waits for the watcher.
type streamer struct {
	c       *net.TCPConn
	closing atomic.Bool
	cut     chan string
}

func (h *hostile) watch(c *net.TCPConn) *streamer {
	s := &streamer{c: c, cut: make(chan string, 1)}
	go func() { s.cut <- watchCut(c, h.ep.WebSocket, &s.closing) }()
	return s
}

func (h *hostile) stop(s *streamer) {
	s.closing.Store(true)
	goodbye(s.c, h.ep.WebSocket)
	h.t.closed.Add(1)
	if why := <-s.cut; why != "" {
		h.t.cut.Add(1)
		h.t.err(why)
	}
}

// sendFor has c write fill()'s buffers until end; it counts the payload
// that went out (a cut session's last write counts what the kernel took).
func (h *hostile) sendFor(c *net.TCPConn, end time.Time, fill func() ([]byte, int64)) {
	for {
		buf, _ := fill()
		n, over, err := writeFrames(c, buf, h.ep.WebSocket, end)
		if h.ep.WebSocket {
			h.t.sent.Add(payloadIn(buf, n))
		} else {
			h.t.sent.Add(int64(n))
		}
		if err != nil {
			h.t.err("write: " + errKind(err))
			return
		}
		if over || n < len(buf) {
			return
		}
	}
}

// attackFrameStorm: every write carries StormFrames masked frames of 1 and
// 2 payload bytes, flat out, to a checking console; a correct proxy relays
// every payload byte once, in order, and ends no session.
func attackFrameStorm(h *hostile) error {
	conns := h.openAll(ModeCheck, h.n, sockOpts{})
	end := time.Now().Add(h.phase)
	ss := make([]*streamer, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		ss[i] = h.watch(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := h.backend.NewSessionID()
			var off int64
			var buf []byte
			h.sendFor(c, end, func() ([]byte, int64) {
				var pay int64
				buf, pay = stormBuf(buf, h.ep.WebSocket, id, off, h.p.StormFrames)
				off += pay
				return buf, pay
			})
		}()
	}
	h.hold(end)
	wg.Wait()
	h.waitHost(ModeCheck)
	for _, s := range ss {
		h.stop(s)
	}
	return nil
}

// attackUpload: clients upload flat out to compute hosts that read
// SlowHostRate bytes/s each; with pushback nothing is cut and the hosts
// receive exactly what the clients managed to send.
func attackUpload(h *hostile) error {
	conns := h.openAll(ModeSlowCheck, h.n, sockOpts{sndbuf: uploadSndBuf})
	end := time.Now().Add(h.phase)
	ss := make([]*streamer, len(conns))
	frame := h.p.FrameSize
	var wg sync.WaitGroup
	for i, c := range conns {
		ss[i] = h.watch(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := h.backend.NewSessionID()
			var off int64
			pay := make([]byte, frame)
			var buf []byte
			h.sendFor(c, end, func() ([]byte, int64) {
				buf = buf[:0]
				var sum int64
				for len(buf) < 64<<10 {
					fillPattern(pay, id, off)
					off += int64(frame)
					sum += int64(frame)
					if h.ep.WebSocket {
						buf = appendFrame(buf, 2, pay)
					} else {
						buf = append(buf, pay...)
					}
				}
				return buf, sum
			})
		}()
	}
	h.hold(end)
	wg.Wait()
	h.waitHost(ModeSlowCheck)
	for _, s := range ss {
		h.stop(s)
	}
	return nil
}

// waitHost waits (bounded) until mode m's hosts have read every payload
// byte the clients sent, or their count stops moving.
func (h *hostile) waitHost(m Mode) {
	counts := func() (int64, int64) { return h.t.sent.Load(), h.backend.received[m].Load() - h.recv0 }
	balancedFor(hostDrainBound, 5*time.Second, counts)
}

// checkDelivered: no session was cut, and the hosts received exactly the
// payload the clients sent.
func checkDelivered(h *hostile) []string {
	var out []string
	if cut := h.t.cut.Load(); cut > 0 {
		out = append(out, fmt.Sprintf("%d of %d sessions ended by the proxy", cut, h.t.opened.Load()))
	}
	sent, got := h.t.sent.Load(), h.backend.received[h.spec.mode].Load()-h.recv0
	if sent != got {
		out = append(out, fmt.Sprintf("hosts received %d of the %d payload bytes the clients sent", got, sent))
	}
	return out
}

// resetBatch is one reset-storm session's last write: data frames of its
// pattern, each followed by a ping (on a TCP relay: the data alone).
func resetBatch(ws bool, id uint32) []byte {
	var buf []byte
	pay := make([]byte, resetFrameBytes)
	for i := range resetFrames {
		fillPattern(pay, id, int64(i*resetFrameBytes))
		if !ws {
			buf = append(buf, pay...)
			continue
		}
		buf = appendFrame(buf, 2, pay)
		buf = appendFrame(buf, 9, []byte("ping"))
	}
	return buf
}

// attackResetStorm: waves of sessions that, all at once, write frames and
// pings in one buffer and reset (SO_LINGER 0) without reading the pongs.
// The proxy meets failed writes in the middle of a batch; the checking
// console must still receive only a prefix of what each client sent.
func attackResetStorm(h *hostile) error {
	end := time.Now().Add(h.phase)
	for wave := 0; wave < h.p.ResetWaves && (wave == 0 || time.Now().Before(end)) && h.ctx.Err() == nil; wave++ {
		conns := h.openAll(ModeCheck, h.n, sockOpts{})
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				batch := resetBatch(h.ep.WebSocket, h.backend.NewSessionID())
				<-start
				c.SetWriteDeadline(time.Now().Add(writeGrace))
				n, err := c.Write(batch)
				if h.ep.WebSocket {
					h.t.sent.Add(payloadIn(batch, n))
				} else {
					h.t.sent.Add(int64(n))
				}
				if err != nil {
					h.t.err("write: " + errKind(err))
				}
				resetClose(c)
				h.t.closed.Add(1)
			}()
		}
		close(start)
		wg.Wait()
		h.probeDuring()
	}
	return nil
}

// attackSlowloris: connections that send half an upgrade request and
// stall (on a TCP relay, the same bytes towards a sink).
func attackSlowloris(h *hostile) error {
	conns := h.dialAll(h.ep.Addrs[ModeSink], func(i int) []byte {
		if h.ep.Path == nil {
			return []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
		}
		return h.d.halfUpgrade(h.token())
	})
	h.hold(time.Now().Add(h.phase))
	h.closeAll(conns)
	return nil
}

// clientHelloStart is the beginning of a TLS ClientHello: a handshake
// record header announcing 512 bytes, then the first bytes of the message.
var clientHelloStart = []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}

// attackTLSSilent: TCP connections to the TLS listener that never complete
// a ClientHello: half send nothing, half its first bytes and then nothing.
func attackTLSSilent(h *hostile) error {
	if h.ep.TLSAddr == nil {
		return fmt.Errorf("tls-silent: the target has no TLS listener")
	}
	conns := h.dialAll(h.ep.TLSAddr, func(i int) []byte {
		if i%2 == 0 {
			return nil
		}
		return clientHelloStart
	})
	h.hold(time.Now().Add(h.phase))
	h.closeAll(conns)
	return nil
}

// dialAll connects h.n plain TCP connections to addr, openParallel at a
// time, and writes first(i) on connection i (nothing when nil).
func (h *hostile) dialAll(addr *net.TCPAddr, first func(i int) []byte) []*net.TCPConn {
	firsts := make([][]byte, h.n)
	for i := range firsts {
		firsts[i] = first(i)
	}
	return h.connectAll(h.n, "connect", func(i int) (*net.TCPConn, error) {
		c, err := h.d.dial(h.ctx, addr, sockOpts{})
		if err == nil && len(firsts[i]) > 0 {
			c.SetWriteDeadline(time.Now().Add(writeGrace))
			if _, err = c.Write(firsts[i]); err != nil {
				c.Close()
			}
			h.t.offered.Add(int64(len(firsts[i])))
		}
		return c, err
	})
}

// attackZeroWindow: clients complete the upgrade to a firehose console,
// with a small receive buffer, and never read while the host sends flat
// out.
func attackZeroWindow(h *hostile) error {
	h.backend.ResumeMode(ModeFirehose)
	conns := h.openAll(ModeFirehose, h.n, sockOpts{rcvbuf: smallRcvBuf})
	h.backend.StartSending()
	h.hold(time.Now().Add(h.phase))
	h.backend.QuiesceMode(ModeFirehose)
	h.closeAll(conns)
	return nil
}

// attackAndCheck runs the attack and the scenario's own checks: cuts,
// delivery, corruption, refused sessions, the probe during the attack. It
// returns the failures; an error is a run that could not be made.
func (h *hostile) attackAndCheck() ([]string, error) {
	h.recv0 = h.backend.received[h.spec.mode].Load()
	h.corrupt0, _ = h.backend.Corrupt()
	start := time.Now()
	err := h.spec.attack(h)
	h.elapsed = time.Since(start)
	if err != nil {
		return nil, err
	}
	var out []string
	if h.spec.check != nil {
		out = append(out, h.spec.check(h)...)
	}
	if f := h.t.openFailed.Load(); f > 0 {
		out = append(out, fmt.Sprintf("%d of %d attacking sessions could not open", f, f+h.t.opened.Load()))
	}
	if h.spec.mode == ModeCheck || h.spec.mode == ModeSlowCheck {
		h.waitHostsClosed(h.spec.mode)
	}
	if bad, _ := h.backend.Corrupt(); bad > h.corrupt0 {
		out = append(out, fmt.Sprintf("%d compute-host connections received bytes no client sent", bad-h.corrupt0))
	}
	if h.during != nil {
		out = append(out, "a well-behaved client was not served during the attack: "+h.during.Error())
	}
	return out, nil
}

// waitHostsClosed waits (bounded by HostileSettle) until no host
// connection of mode m is open: every host stream is then complete and
// checked.
func (h *hostile) waitHostsClosed(m Mode) {
	deadline := time.Now().Add(h.p.HostileSettle)
	for h.backend.Open(m) > 0 && time.Now().Before(deadline) && h.ctx.Err() == nil {
		time.Sleep(settlePoll)
	}
}

// balancedFor is balanced with a longer stall allowance (a slow host moves
// its count slowly).
func balancedFor(timeout, stall time.Duration, counts func() (a, b int64)) bool {
	const settleFor, poll = 50 * time.Millisecond, 10 * time.Millisecond
	deadline, moved := time.Now().Add(timeout), time.Now()
	var lastA, lastB int64 = -1, -1
	for time.Now().Before(deadline) && time.Since(moved) < stall {
		a, b := counts()
		if a != lastA || b != lastB {
			moved, lastA, lastB = time.Now(), a, b
		} else if a == b && time.Since(moved) >= settleFor {
			return true
		}
		time.Sleep(poll)
	}
	return false
}

// runHostile is one hostile run: its own backend and target, warm-up,
// baseline, attack with peak sampling, settle, final probe, verdict.
func runHostile(ctx context.Context, cfg Config, sc *scenario, k runKey, dir string, r *Result) error {
	spec := sc.hostile
	p := cfg.Params
	backend, err := StartBackend(BackendConfig{Rate: p.StreamRate, BurstBytes: p.BurstBytes,
		BurstInterval: p.BurstInterval, SlowRate: p.SlowHostRate})
	if err != nil {
		return err
	}
	defer backend.Close()
	var tlsFiles *TLSFiles
	if spec.tls {
		if tlsFiles, err = writeSelfSigned(dir); err != nil {
			return err
		}
	}
	target := targets[k.target](cfg)
	idle := hostileIdleTimeout(p.HostileSettle)
	if spec.patient {
		idle = 0
	}
	ep, err := target.Start(ctx, RunSpec{Dir: dir, Tokens: spec.tokens(k.sessions), Backend: backend,
		MaxConn: k.sessions, Metrics: true, TLS: tlsFiles, IdleTimeout: idle})
	if err != nil {
		return err
	}
	defer target.Stop()
	h := newHostile(ctx, p, spec, k.sessions, cfg.Duration, ep, backend, cfg.SourceAddrs)
	rr := NewResourceReader(target.PID(), ep.MetricsURL)
	hr := &HostileResult{}
	r.Hostile = hr
	err = h.measure(rr, hr)
	h.fill(r)
	if err != nil {
		hr.Failures = append(hr.Failures, "the run could not be made: "+err.Error())
		return err
	}
	for _, f := range hr.Failures {
		r.Errors = append(r.Errors, "FAIL: "+f)
	}
	return nil
}

// measure is the run's sequence around attackAndCheck; hr gets the
// readings and the failures.
func (h *hostile) measure(rr *ResourceReader, hr *HostileResult) error {
	for k := range warmupProbes {
		if err := h.d.probe(h.ctx, h.probeT(k)); err != nil {
			return fmt.Errorf("warm-up session: %w", err)
		}
	}
	hr.Before = quiesce(h.ctx, rr.Read, 10*time.Second, settlePoll)
	hr.Peak = hr.Before
	stop := sampleEvery(rr, hostileSample, func(s Resources) { hr.Peak = peakOf(hr.Peak, s) })
	failures, err := h.attackAndCheck()
	stop()
	if err != nil {
		return err
	}
	after, ok, took := settle(h.ctx, rr.Read, hr.Before, DefaultTolerance, h.p.HostileSettle, settlePoll)
	hr.After, hr.SettleSeconds = after, took.Seconds()
	hr.Peak = peakOf(hr.Peak, after)
	if after.RSSBytes == 0 {
		failures = append(failures, "the proxy process is gone")
	}
	if !ok {
		for _, why := range DefaultTolerance.Exceeded(hr.Before, after) {
			failures = append(failures, fmt.Sprintf("not back to baseline %.0fs after the clients left: %s", h.p.HostileSettle.Seconds(), why))
		}
	}
	hr.HostsOpen = int(h.backend.Open(h.spec.mode))
	if hr.HostsOpen > 0 {
		failures = append(failures, fmt.Sprintf("%d compute-host connections still open after the clients left", hr.HostsOpen))
	}
	if err := h.d.probe(h.ctx, h.probeT(warmupProbes+1)); err != nil {
		failures = append(failures, "a well-behaved client was not served after the attack: "+err.Error())
	}
	hr.Cut = int(h.t.cut.Load())
	hr.Corrupt, hr.CorruptDetails = h.backend.Corrupt()
	hr.Corrupt -= h.corrupt0
	hr.Failures = failures
	return nil
}

// fill copies the run's counts into r.
func (h *hostile) fill(r *Result) {
	r.Opened = int(h.t.opened.Load())
	r.Failed = int(h.t.openFailed.Load() + h.t.cut.Load())
	r.Closed = int(h.t.closed.Load())
	r.BytesSent = h.t.sent.Load()
	if h.spec.mode == ModeCheck || h.spec.mode == ModeSlowCheck {
		r.BytesReceived = h.backend.received[h.spec.mode].Load() - h.recv0
	}
	r.Seconds = h.elapsed.Seconds()
	if hr := r.Hostile; hr != nil {
		r.ProxyRSSBytes, r.ProxyFDs = hr.Peak.RSSBytes, hr.Peak.FDs
	}
	r.Errors = append(r.Errors, errorList(h.t.errors())...)
	if h.during != nil {
		r.Errors = append(r.Errors, "probe during the attack: "+h.during.Error())
	}
	if n := h.t.offered.Load(); n > 0 {
		r.Params["other_bytes_sent"] = strconv.FormatInt(n, 10) // pings, half requests, ClientHello starts
	}
	if n := h.t.endedByProxy.Load(); n > 0 {
		r.Params["ended_by_proxy"] = strconv.FormatInt(n, 10)
	}
}

// sampleEvery reads rr every interval on a goroutine, handing each reading
// to f (on that goroutine), until the returned stop is called; stop waits
// for the goroutine, so f's writes are visible after it.
func sampleEvery(rr *ResourceReader, interval time.Duration, f func(Resources)) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f(rr.Read())
			}
		}
	}()
	return func() { close(done); <-finished }
}
