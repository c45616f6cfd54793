//go:build linux

package rfb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"

	"github.com/consoleproxy/consoleproxy/relay"
)

// The RFB security proxy (Nova's nova/console/securityproxy/rfb.py): with
// VeNCrypt configured, the proxy speaks the RFB security handshake with the
// compute host itself (RFC 6143 §7.1, VeNCrypt's X509None subtype: TLS with
// the proxy's client certificate), and poses to the client as a server
// offering only security type None. The host's SecurityResult is read
// too, so a host that refuses is known before the client is upgraded; after
// it both sides are relayed unchanged.
//
// Like Nova, only RFB 3.8 is spoken on either side.

// Scheme is one of Nova's [vnc] auth_schemes.
type Scheme string

// Schemes Nova knows.
const (
	SchemeNone     Scheme = "none"
	SchemeVeNCrypt Scheme = "vencrypt"
)

// RFB and VeNCrypt numbers (RFC 6143 §7.1.2, rfbproto's VeNCrypt section).
const (
	rfbSecNone     = 1
	rfbSecVeNCrypt = 19
	// vencryptX509None is TLS with X.509 certificates and no further
	// authentication: the channel is encrypted and the compute host is
	// authenticated (Nova rules out the anonymous-DH TLS* subtypes).
	vencryptX509None = 260
)

// rfbVersion is the only ProtocolVersion either side may use.
const rfbVersion = "RFB 003.008\n"

// The client's side of the handshake, in the place of the compute host's,
// one step at a time: GreetVersion after the 101; GreetTypes (one security
// type, None) once the client's version (ClientVersionLen bytes) passed
// CheckClientVersion; GreetResult (SecurityResult OK) once its choice (one
// byte) passed CheckClientChoice. Each goes in a WebSocket message of its
// own after the client's answer, as from a real server: noVNC handles one
// handshake step per message it receives. The client's ClientReplyLen bytes
// are dropped; everything after them is relayed.
var (
	GreetVersion = []byte(rfbVersion)
	GreetTypes   = []byte{1, rfbSecNone}
	GreetResult  = []byte{0, 0, 0, 0}
)

// Lengths of the client's answers.
const (
	ClientVersionLen = len(rfbVersion)
	ClientReplyLen   = ClientVersionLen + 1 // the version and the choice
)

// HostGreetingLen is the compute host's first message, its
// ProtocolVersion: what to wait for, without a goroutine, before Secure
// (relay.Open's StepGreeting), so a host that accepts and never speaks holds none.
const HostGreetingLen = len(rfbVersion)

// Errors of the security handshake. None carries bytes from either peer;
// ErrVeNCryptTLS wraps crypto/tls's error, whose text may name the host
// certificate's names (the loop logs a fixed phrase instead).
var (
	ErrRFBVersion     = errors.New("compute host does not speak RFB 3.8")
	ErrRFBRefused     = errors.New("compute host refused the connection (no security types)")
	ErrRFBNoScheme    = errors.New("compute host offers none of the configured auth schemes")
	ErrVeNCrypt       = errors.New("compute host's VeNCrypt handshake failed (version or X509None subtype)")
	ErrVeNCryptTLS    = errors.New("TLS with the compute host failed")
	ErrRFBClosed      = errors.New("compute host closed during the RFB handshake")
	ErrRFBAuthFailed  = errors.New("compute host's SecurityResult is a failure")
	ErrRFBClientReply = errors.New("client did not answer RFB 3.8 with security type None")
)

// Config configures the security proxy.
type Config struct {
	// Schemes in order of preference: the first one the compute host offers
	// is used (Nova's [vnc] auth_schemes).
	Schemes []Scheme
	// CAFile holds the CA certificates compute hosts' VNC certificates must
	// chain to ([vnc] vencrypt_ca_certs); required with vencrypt.
	CAFile string
	// CertFile and KeyFile are the proxy's client certificate
	// ([vnc] vencrypt_client_cert, vencrypt_client_key): both or neither.
	CertFile, KeyFile string
	// SkipHostname checks only the chain, as Nova does; by default the
	// certificate must also name the host (DNS name or IP address) the
	// token points at.
	SkipHostname bool
}

// Proxy runs the compute side of the handshake. Safe for
// concurrent use.
type Proxy struct {
	schemes      []Scheme
	cfg          Config
	tls          atomic.Pointer[clientTLS] // nil without vencrypt; swapped by Reload
	skipHostname bool
	shakers      *pool // runs Secure's handshakes
}

// ParseSchemes reads Nova's comma-separated auth_schemes.
func ParseSchemes(s string) ([]Scheme, error) {
	var out []Scheme
	seen := map[Scheme]bool{}
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		sc := Scheme(strings.ToLower(f))
		if sc != SchemeNone && sc != SchemeVeNCrypt {
			return nil, fmt.Errorf("auth scheme %q: want none or vencrypt", f)
		}
		if !seen[sc] {
			seen[sc] = true
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no auth scheme: want none, vencrypt or both")
	}
	return out, nil
}

// New checks cfg and loads its certificates. It returns nil,
// nil when the schemes are "none" alone: then the proxy stays out of the
// RFB stream, and the client negotiates with the compute host directly.
func New(cfg Config) (*Proxy, error) {
	if len(cfg.Schemes) == 0 || (len(cfg.Schemes) == 1 && cfg.Schemes[0] == SchemeNone) {
		return nil, nil
	}
	p := &Proxy{schemes: cfg.Schemes, cfg: cfg, skipHostname: cfg.SkipHostname,
		shakers: newPool(Handshakers, HandshakeQueue)}
	if !p.offers(SchemeVeNCrypt) {
		return p, nil
	}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// Reload reads the CA and client certificate files again (SIGHUP: a
// rotated certificate is used from the next session on). On an error the
// previous ones stay. Without vencrypt it does nothing.
func (p *Proxy) Reload() error {
	if !p.offers(SchemeVeNCrypt) {
		return nil
	}
	cfg := p.cfg
	if cfg.CAFile == "" {
		return errors.New("vencrypt: no CA certificates for compute hosts (--vencrypt-ca-certs, [vnc] vencrypt_ca_certs)")
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return fmt.Errorf("vencrypt: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("vencrypt: %s holds no PEM certificate", cfg.CAFile)
	}
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	switch {
	case cfg.CertFile != "" && cfg.KeyFile != "":
		c, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return fmt.Errorf("vencrypt: client certificate %s and key %s: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{c}
	case cfg.CertFile != "" || cfg.KeyFile != "":
		return errors.New("vencrypt: a client certificate needs its key and a key its certificate")
	}
	p.tls.Store(newClientTLS(tc, p.skipHostname))
	return nil
}

func (p *Proxy) offers(s Scheme) bool {
	for _, x := range p.schemes {
		if x == s {
			return true
		}
	}
	return false
}

// Negotiate runs the compute host's side of the handshake on conn, within
// ctx and whatever deadline conn has: ProtocolVersion, the security type
// (the first configured scheme the host offers), for VeNCrypt the subtype
// and the TLS handshake, and the host's SecurityResult, which must be OK.
// It returns the connection to relay through: conn itself, or the TLS
// connection over it; the host's next bytes are its ServerInit, once the
// client has sent ClientInit. host is the compute host's name or address,
// for the certificate check.
func (p *Proxy) Negotiate(ctx context.Context, conn net.Conn, host string) (net.Conn, Scheme, error) {
	t, scheme, err := p.negotiateTLS(ctx, conn, host)
	switch {
	case err != nil:
		return nil, scheme, err
	case t != nil:
		return t.Conn(), scheme, nil
	}
	return conn, scheme, nil
}

// negotiateTLS is Negotiate with VeNCrypt's TLS client returned as it is,
// to be attached to a relay poller (relay.AttachTLS); nil with None.
func (p *Proxy) negotiateTLS(ctx context.Context, conn net.Conn, host string) (*relay.TLSClient, Scheme, error) {
	scheme, err := p.negotiate(conn)
	if err != nil {
		return nil, scheme, err
	}
	var t *relay.TLSClient
	var out io.Reader = conn
	if scheme == SchemeVeNCrypt {
		if t, err = p.handshakeTLS(ctx, conn, host); err != nil {
			return nil, scheme, err
		}
		out = t.Conn()
	}
	if err := securityResult(out); err != nil {
		// TLS 1.3: a refused client certificate shows here, as an alert
		// (crypto/tls, OpenSSL) or as a bare close (QEMU 7.2 with GnuTLS).
		if scheme == SchemeVeNCrypt && (IsTLSAlert(err) || errors.Is(err, ErrRFBClosed)) {
			err = fmt.Errorf("%w: %w", ErrVeNCryptTLS, err)
		}
		return nil, scheme, err
	}
	return t, scheme, nil
}

// IsTLSAlert reports whether err is an alert the TLS peer sent (crypto/tls
// returns those as a net.OpError "remote error"; QUIC-style as AlertError).
func IsTLSAlert(err error) bool {
	var op *net.OpError
	var alert tls.AlertError
	return (errors.As(err, &op) && op.Op == "remote error") || errors.As(err, &alert)
}

// securityResult reads the host's SecurityResult (RFC 6143 §7.1.3). A
// failure's reason string is not read.
func securityResult(r io.Reader) error {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return ErrRFBClosed
		}
		return err
	}
	if binary.BigEndian.Uint32(b[:]) != 0 {
		return ErrRFBAuthFailed
	}
	return nil
}

// handshakeTLS runs VeNCrypt's TLS as the client, over conn (blocking).
// A ctx that can be cancelled costs crypto/tls a watcher goroutine: Secure
// passes one that cannot, and bounds the handshake with conn's deadline.
func (p *Proxy) handshakeTLS(ctx context.Context, conn net.Conn, host string) (*relay.TLSClient, error) {
	t := relay.NewTLSClient(conn, p.tls.Load().forHost(host))
	if err := t.Conn().HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrVeNCryptTLS, err)
	}
	return t, nil
}

// verifyChain checks the peer's chain against roots without a name.
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// negotiate is the RFB part, up to where TLS starts. It reads exactly the
// bytes each message has, so nothing of what follows is consumed.
func (p *Proxy) negotiate(rw io.ReadWriter) (Scheme, error) {
	var buf [4 + 255*4]byte
	read := func(n int) ([]byte, error) {
		if _, err := io.ReadFull(rw, buf[:n]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, ErrRFBClosed
			}
			return nil, err
		}
		return buf[:n], nil
	}
	v, err := read(len(rfbVersion))
	if err != nil {
		return "", err
	}
	if string(v) != rfbVersion {
		return "", ErrRFBVersion
	}
	if _, err := io.WriteString(rw, rfbVersion); err != nil {
		return "", err
	}
	n, err := read(1)
	if err != nil {
		return "", err
	}
	if n[0] == 0 {
		return "", ErrRFBRefused // a reason string follows: not read, not shown
	}
	types, err := read(int(n[0]))
	if err != nil {
		return "", err
	}
	scheme, code := p.choose(types)
	if scheme == "" {
		_, _ = rw.Write([]byte{0}) // "invalid": tells the host we give up
		return "", ErrRFBNoScheme
	}
	if _, err := rw.Write([]byte{code}); err != nil {
		return "", err
	}
	if scheme == SchemeNone {
		return scheme, nil
	}
	return scheme, vencryptSubtype(rw, read)
}

// choose picks the first configured scheme among the host's types.
func (p *Proxy) choose(types []byte) (Scheme, byte) {
	for _, s := range p.schemes {
		code := byte(rfbSecNone)
		if s == SchemeVeNCrypt {
			code = rfbSecVeNCrypt
		}
		for _, t := range types {
			if t == code {
				return s, code
			}
		}
	}
	return "", 0
}

// vencryptSubtype agrees on VeNCrypt 0.2 and the X509None subtype.
func vencryptSubtype(w io.Writer, read func(int) ([]byte, error)) error {
	v, err := read(2)
	if err != nil {
		return err
	}
	if v[0] != 0 || v[1] != 2 {
		return ErrVeNCrypt
	}
	if _, err := w.Write([]byte{0, 2}); err != nil {
		return err
	}
	ok, err := read(1)
	if err != nil {
		return err
	}
	if ok[0] != 0 {
		return ErrVeNCrypt
	}
	n, err := read(1)
	if err != nil {
		return err
	}
	subs, err := read(4 * int(n[0]))
	if err != nil {
		return err
	}
	found := false
	for i := 0; i < len(subs); i += 4 {
		found = found || binary.BigEndian.Uint32(subs[i:]) == vencryptX509None
	}
	if !found {
		return ErrVeNCrypt
	}
	if _, err := w.Write(binary.BigEndian.AppendUint32(nil, vencryptX509None)); err != nil {
		return err
	}
	// Not in the VeNCrypt write-up but sent by QEMU and GTK-VNC: one byte,
	// 1 for accepted (unlike the rest of RFB).
	acc, err := read(1)
	if err != nil {
		return err
	}
	if acc[0] != 1 {
		return ErrVeNCrypt
	}
	return nil
}

// CheckClientVersion vets the client's ProtocolVersion: RFB 3.8 exactly.
func CheckClientVersion(b []byte) error {
	if string(b) != rfbVersion {
		return ErrRFBClientReply
	}
	return nil
}

// CheckClientChoice vets the client's security type: None, the only one
// offered.
func CheckClientChoice(c byte) error {
	if c != rfbSecNone {
		return ErrRFBClientReply
	}
	return nil
}
