package tokens

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/consoleproxy/consoleproxy/relay"
)

// maxAdminBody caps an admin request body.
const maxAdminBody = 16 << 10

// errOwnListener refuses a mint whose host and port name one of the
// proxy's own listeners: a console there would be the proxy itself (its
// metrics, its admin API, its WebSocket port).
var errOwnListener = errors.New("host and port must not name one of the proxy's own listeners")

// mintWire is the JSON body of POST /v1/tokens.
type mintWire struct {
	ConsoleType        string  `json:"console_type"`
	Host               string  `json:"host"`
	Port               int     `json:"port"`
	InstanceUUID       string  `json:"instance_uuid"`
	InternalAccessPath *string `json:"internal_access_path"`
	AccessURLBase      string  `json:"access_url_base"`
	TTLSeconds         int64   `json:"ttl_seconds"` // 0 means DefaultTTL
}

// mintAnswer is the JSON body of a 201 answer.
type mintAnswer struct {
	Token        string `json:"token"`
	Expires      int64  `json:"expires"`
	InstanceUUID string `json:"instance_uuid"`
}

// AdminHandler returns the admin API over e:
//
//	POST   /v1/tokens               JSON MintRequest (ttl_seconds) → 201 {"token","expires","instance_uuid"}
//	DELETE /v1/tokens/{token_hash}  → 204, or 404 for an unknown hash
//
// Every request needs "Authorization: Bearer <secret>"; anything else gets
// 401 with a generic body. secret is copied; an empty secret refuses every
// request. Bodies over 16 KiB get 413, malformed ones 400, other methods 405.
// A mint whose host (an IP address, or localhost) and port name one of own,
// the proxy's listeners (relay.Denied), gets 400 whatever
// --allowed-targets says; a host name is checked after DNS, at connect
// time (relay.DialConfig.Deny). own is copied. Neither tokens nor the
// secret are logged.
func (e *Embedded) AdminHandler(secret []byte, own []netip.AddrPort) http.Handler {
	own = slices.Clone(own)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tokens", func(w http.ResponseWriter, r *http.Request) { e.handleMint(w, r, own) })
	mux.HandleFunc("DELETE /v1/tokens/{token_hash}", e.handleRevoke)
	return &adminAuth{digest: sha256.Sum256(secret), empty: len(secret) == 0, next: mux}
}

// adminAuth checks the bearer secret before anything else runs.
type adminAuth struct {
	digest [sha256.Size]byte
	empty  bool
	next   http.Handler
}

func (a *adminAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.allowed(r.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="consoleproxy-admin"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	a.next.ServeHTTP(w, r)
}

// allowed compares the bearer credential with the secret in constant time,
// over SHA-256 digests of both so the secret's length does not leak.
func (a *adminAuth) allowed(header string) bool {
	scheme, cred, ok := strings.Cut(header, " ")
	if a.empty || !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	return subtle.ConstantTimeCompare(got[:], a.digest[:]) == 1
}

func (e *Embedded) handleMint(w http.ResponseWriter, r *http.Request, own []netip.AddrPort) {
	var req mintWire
	if status := decodeBody(w, r, &req); status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	if req.TTLSeconds < 0 || req.TTLSeconds > int64(MaxTTL/time.Second) {
		http.Error(w, errTTL.Error(), http.StatusBadRequest)
		return
	}
	if ownListener(req.Host, req.Port, own) {
		http.Error(w, errOwnListener.Error(), http.StatusBadRequest)
		return
	}
	token, rec, err := e.Mint(r.Context(), MintRequest{
		ConsoleType: req.ConsoleType, Host: req.Host, Port: req.Port, InstanceUUID: req.InstanceUUID,
		InternalAccessPath: req.InternalAccessPath, AccessURLBase: req.AccessURLBase,
		TTL: time.Duration(req.TTLSeconds) * time.Second,
	})
	switch {
	case errors.Is(err, ErrInvalid):
		http.Error(w, err.Error(), http.StatusBadRequest) // names a field, never a value
		return
	case err != nil:
		e.log.Warn("admin: mint failed", "err", err.Error())
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	e.log.Info("admin: token minted", "instance", rec.InstanceUUID, "console_type", rec.ConsoleType, "expires", rec.Expires)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(mintAnswer{Token: token, Expires: rec.Expires, InstanceUUID: rec.InstanceUUID})
}

func (e *Embedded) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var h Hash
	s := r.PathValue("token_hash")
	if len(s) != hex.EncodedLen(len(h)) || !isLowerHex(s) {
		http.Error(w, errTokenHash.Error(), http.StatusBadRequest)
		return
	}
	_, _ = hex.Decode(h[:], []byte(s))
	switch err := e.Revoke(r.Context(), h); {
	case errors.Is(err, ErrNotFound):
		http.Error(w, "not found", http.StatusNotFound)
	case err != nil:
		e.log.Warn("admin: revoke failed", "err", err.Error())
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	default:
		e.log.Info("admin: token revoked")
		w.WriteHeader(http.StatusNoContent)
	}
}

// ownListener reports whether host:port reaches one of own: host an IP
// address, or localhost (the loopback addresses). Any other name is left to
// the connect, which checks every address it resolves to.
func ownListener(host string, port int, own []netip.AddrPort) bool {
	if port < 1 || port > 65535 {
		return false // Mint refuses it
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	}
	for _, a := range addrs {
		if relay.Denied(netip.AddrPortFrom(a, uint16(port)), own) {
			return true
		}
	}
	return false
}

// decodeBody reads one JSON object (unknown fields refused) from a body
// capped at maxAdminBody. It returns 0, or the status to answer with.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) int {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err = dec.Token(); errors.Is(err, io.EOF) {
			return 0 // nothing after the object
		}
		if err == nil {
			err = errors.New("trailing data")
		}
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}
