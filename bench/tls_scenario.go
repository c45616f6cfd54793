package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"strconv"
	"syscall"
	"time"
)

// The TLS scenarios (issue 13's figures): throughput over wss:// next to
// the same sessions over plain ws:// (for the TCP relay: haproxy
// terminating TLS next to plain TCP), both ways; and full TLS handshakes
// per second with an ECDSA P-256 and an RSA 2048 certificate. They run on
// a goroutine-per-session client (tls_client.go): crypto/tls needs a
// net.Conn, and they run at a few sessions (1 and 100), where the epoll
// client's economy does not matter. Plain and TLS go through that same
// client, so their ratio is the TLS layer's alone.

// tlsSpec is what a TLS scenario measures.
type tlsSpec struct {
	tls        bool     // over TLS (wss://; haproxy's ssl listener) rather than plain
	mode       Mode     // the console behind the sessions
	handshakes bool     // full handshakes per second rather than a stream
	cert       CertKind // the target's certificate
}

// tlsScenarios, in report order. ws-*/wss-* pairs differ only in TLS.
var tlsScenarios = []*scenario{
	{name: "ws-stream-down", params: tlsStreamParams, tls: &tlsSpec{mode: ModeFirehose, cert: CertECDSAP256}},
	{name: "wss-stream-down", params: tlsStreamParams, tls: &tlsSpec{tls: true, mode: ModeFirehose, cert: CertECDSAP256}},
	{name: "ws-stream-up", params: tlsStreamParams, tls: &tlsSpec{mode: ModeSink, cert: CertECDSAP256}},
	{name: "wss-stream-up", params: tlsStreamParams, tls: &tlsSpec{tls: true, mode: ModeSink, cert: CertECDSAP256}},
	{name: "tls-handshakes-ecdsa", params: handshakeParams, handshakes: true,
		tls: &tlsSpec{tls: true, mode: ModeEcho, handshakes: true, cert: CertECDSAP256}},
	{name: "tls-handshakes-rsa", params: handshakeParams, handshakes: true,
		tls: &tlsSpec{tls: true, mode: ModeEcho, handshakes: true, cert: CertRSA2048}},
}

// TLSScenarios names the TLS scenarios in report order.
func TLSScenarios() []string {
	ns := make([]string, len(tlsScenarios))
	for i, s := range tlsScenarios {
		ns[i] = s.name
	}
	return ns
}

// isTLSScenario reports whether name is one of tlsScenarios.
func isTLSScenario(name string) bool {
	for _, s := range tlsScenarios {
		if s.name == name {
			return true
		}
	}
	return false
}

func tlsStreamParams(p Params) map[string]string {
	return map[string]string{"rate_bytes_per_session": "flat-out", "frame_bytes": strconv.Itoa(p.FrameSize)}
}

func handshakeParams(p Params) map[string]string {
	return map[string]string{"handshakes_max": strconv.Itoa(p.HandshakeCount)}
}

// tlsOpenTimeout bounds one session's connect, TLS handshake and upgrade.
const tlsOpenTimeout = 10 * time.Second

// runTLS is one run of a TLS scenario: a backend, the target with a
// certificate of the scenario's kind, the client, the measurement.
func runTLS(ctx context.Context, cfg Config, sc *scenario, k runKey, dir string, r *Result) error {
	spec, p := sc.tls, cfg.Params
	backend, err := StartBackend(BackendConfig{})
	if err != nil {
		return err
	}
	defer backend.Close()
	files, err := writeCert(dir, spec.cert)
	if err != nil {
		return err
	}
	pool := k.sessions
	if spec.handshakes {
		pool = p.HandshakeCount // a token per handshake: none is reused
	}
	target := targets[k.target](cfg)
	ep, err := target.Start(ctx, RunSpec{Dir: dir, Tokens: allModes(spec.mode)(p, pool), Backend: backend,
		MaxConn: k.sessions, TLS: files})
	if err != nil {
		return err
	}
	defer target.Stop()
	roots, err := certPool(files.Cert)
	if err != nil {
		return err
	}
	g := newGClient(ep, spec, roots, cfg.SourceAddrs, p.FrameSize)
	e := &tlsEnv{ctx: ctx, cfg: cfg, n: k.sessions, target: target, backend: backend, g: g, res: r}
	r.Params["certificate"] = string(spec.cert)
	if spec.handshakes {
		err = e.measureHandshakes()
	} else {
		err = e.measureStream(spec.mode)
	}
	g.closeAll()
	e.finish(spec.tls)
	return err
}

// tlsEnv is one TLS run in progress, used by the controlling goroutine.
type tlsEnv struct {
	ctx     context.Context
	cfg     Config
	n       int
	target  Target
	backend *Backend
	g       *gclient
	res     *Result
}

// phase waits d (or until done closes), measuring the proxy's and this
// process's CPU over it (the client's figure includes the backend, which
// runs in this process too) and count's growth.
func (e *tlsEnv) phase(d time.Duration, done <-chan struct{}, count func() int64) int64 {
	t0, n0 := time.Now(), count()
	p0, c0 := TreeCPU(e.target.PID()), selfCPU()
	select {
	case <-time.After(d):
	case <-done:
	case <-e.ctx.Done():
	}
	p1, c1 := TreeCPU(e.target.PID()), selfCPU()
	n1 := count()
	e.res.Seconds = time.Since(t0).Seconds()
	e.res.ProxyCPUSeconds, e.res.ClientCPUSeconds = p1-p0, c1-c0
	return n1 - n0
}

// measureStream opens the sessions, streams flat out toward the client
// (firehose) or toward the host (sink), and measures the steady rate.
func (e *tlsEnv) measureStream(m Mode) error {
	if err := e.g.openAll(e.ctx, e.n, m); err != nil {
		return err
	}
	var count, sent func() int64
	if m == ModeFirehose {
		e.backend.StartSending()
		count, sent = e.g.received, e.backend.Sent
	} else {
		e.g.startUploads()
		count, sent = e.backend.Received, e.g.sentBytes
	}
	select {
	case <-time.After(min(e.cfg.Duration/4, 500*time.Millisecond)): // warm-up, as env.warmUp
	case <-e.ctx.Done():
	}
	bytes := e.phase(e.cfg.Duration, nil, count)
	if e.res.Seconds > 0 {
		e.res.MBps = float64(bytes) / 1e6 / e.res.Seconds
		e.res.MBpsPerSession = e.res.MBps / float64(e.n)
	}
	if bytes > 0 {
		e.res.ProxyCPUSecPerGB = e.res.ProxyCPUSeconds / (float64(bytes) / 1e9)
	}
	if m == ModeFirehose {
		e.backend.Quiesce()
	} else {
		e.g.stopUploads()
	}
	counts := func() (int64, int64) { return sent(), count() }
	if m == ModeFirehose {
		counts = func() (int64, int64) { return sent(), e.g.received() }
	}
	if !balanced(drainTimeout, counts) {
		a, b := counts()
		e.res.Errors = append(e.res.Errors, fmt.Sprintf("bytes in flight never all arrived after the senders stopped: %d sent, %d received", a, b))
	}
	e.res.BytesSent, e.res.BytesReceived = counts()
	e.res.Opened = int(e.g.opened.Load())
	return nil
}

// measureHandshakes runs e.n workers doing full handshakes (plus the
// upgrade, or one echoed byte over the TCP relay), each on a fresh
// connection with its own token, until HandshakeCount are done or the
// measured phase ends.
func (e *tlsEnv) measureHandshakes() error {
	done := e.g.startHandshakes(e.ctx, e.n, e.cfg.Params.HandshakeCount, e.cfg.Duration)
	n := e.phase(e.cfg.Duration+tlsOpenTimeout, done, e.g.handshakesDone)
	<-done
	if e.res.Seconds > 0 {
		e.res.SessionsPerSecond = float64(n) / e.res.Seconds
	}
	e.res.Opened = int(e.g.opened.Load())
	e.res.Messages = n
	return nil
}

// finish fills the counts, latency, what was negotiated and the errors.
func (e *tlsEnv) finish(overTLS bool) {
	r := e.res
	r.Closed = int(e.g.closed.Load())
	r.Failed = int(e.g.failed.Load())
	if h := e.g.collect(); h.Count() > 0 {
		r.Latency, r.CDF = h.Percentiles(), h.CDF(200)
	}
	if st := e.g.state(); overTLS && st != nil {
		r.Params["tls_version"] = tls.VersionName(st.Version)
		r.Params["cipher_suite"] = tls.CipherSuiteName(st.CipherSuite)
		r.Params["group"] = st.CurveID.String()
	}
	r.Errors = append(r.Errors, errorList(e.g.errors())...)
}

// selfCPU is this process's user and system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// maxHandshakeCount bounds --handshakes: each handshake has its own token
// (the target's token file holds that many) and leaves a connection in
// TIME_WAIT for a minute, spread over the loopback source addresses.
const maxHandshakeCount = 20000
