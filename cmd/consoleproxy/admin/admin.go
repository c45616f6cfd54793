// Package admin is the proxy's admin HTTP API (CONTRACT.md "The admin
// API"), served only on a loopback address or a Unix socket (listen.go),
// never on --listen or --metrics-listen, behind a bearer secret
// (secret.go):
//
//	POST   /v1/tokens               mint a token into a writable store (tokens.go)
//	DELETE /v1/tokens/{token_hash}  revoke it
//	GET    /v1/sessions             this proxy's live sessions (sessions.go)
//	DELETE /v1/sessions/{id}        end one with close 1008
//
// Answers are JSON; an error is {"error": "…"} and, for an invalid field,
// {"error": "…", "field": "…"}: a reason and a field name, never a value.
// Neither tokens, token hashes nor the secret are logged.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// Sessions is the proxy's view of its live sessions (loop.Server).
type Sessions interface {
	Sessions() []loop.SessionInfo
	EndSession(id uint64) bool
}

// Config configures the API.
type Config struct {
	// Secret is the bearer secret; copied. Empty refuses every request.
	Secret []byte
	// Store is the token store. A tokens.Writable mints and revokes; any
	// other store (file:, novadb:) answers both with 409.
	Store tokens.Store
	// ConsoleType is the console kind this proxy serves: the only
	// console_type a mint may ask for (and the default when it names none).
	ConsoleType string
	// PublicURL is the base of the url a mint answers with (--public-url):
	// an absolute http, https, ws or wss URL.
	PublicURL string
	// Own is the proxy's own listeners, never a minted target; copied.
	Own []netip.AddrPort
	// Sessions lists and ends live sessions; nil answers /v1/sessions
	// with an empty list and 404.
	Sessions Sessions
	// Revoked, when set, runs after DELETE /v1/tokens/{token_hash} removed
	// a record: it ends the token's live sessions (on every proxy sharing
	// the reuse store). Its error is logged; the answer is still 204, the
	// record being gone.
	Revoked func(ctx context.Context, h tokens.Hash) error
	// Logger nil means slog.Default().
	Logger *slog.Logger
}

// API is the admin API's http.Handler.
type API struct {
	cfg       Config
	log       *slog.Logger
	publicURL *url.URL
	digest    [sha256.Size]byte
	mux       *http.ServeMux
}

// New checks cfg and returns the API.
func New(cfg Config) (*API, error) {
	if cfg.Store == nil {
		return nil, errors.New("admin: no token store")
	}
	u, err := parsePublicURL(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	cfg.Secret = slices.Clone(cfg.Secret)
	cfg.Own = slices.Clone(cfg.Own)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &API{cfg: cfg, log: cfg.Logger, publicURL: u, digest: sha256.Sum256(cfg.Secret), mux: http.NewServeMux()}
	a.mux.HandleFunc("POST /v1/tokens", a.mint)
	a.mux.HandleFunc("DELETE /v1/tokens/{token_hash}", a.revoke)
	a.mux.HandleFunc("GET /v1/sessions", a.listSessions)
	a.mux.HandleFunc("DELETE /v1/sessions/{id}", a.endSession)
	return a, nil
}

// CheckPublicURL checks a --public-url as New will: at start-up, before
// any listener is bound.
func CheckPublicURL(s string) error {
	_, err := parsePublicURL(s)
	return err
}

// parsePublicURL checks --public-url: absolute, http(s) or ws(s), with a
// host, and no fragment (the token goes in the query).
func parsePublicURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("--public-url is not a URL")
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return nil, errors.New("--public-url must be an http, https, ws or wss URL")
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, errors.New("--public-url must have a host, and no user info or fragment")
	}
	return u, nil
}

// ServeHTTP checks the bearer secret before anything else runs.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !a.allowed(r.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="consoleproxy-admin"`)
		writeError(w, http.StatusUnauthorized, "unauthorized")
		return
	}
	a.mux.ServeHTTP(w, r)
}

// allowed compares the bearer credential with the secret in constant time,
// over SHA-256 digests of both so the secret's length does not leak.
func (a *API) allowed(header string) bool {
	scheme, cred, ok := strings.Cut(header, " ")
	if len(a.cfg.Secret) == 0 || !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	return subtle.ConstantTimeCompare(got[:], a.digest[:]) == 1
}

// errorWire is the body of every error answer.
type errorWire struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// writeJSON answers status with v as JSON. A failed write is the client's
// (gone); there is nothing to answer it with.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers status with {"error": msg}; msg is a fixed phrase.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorWire{Error: msg})
}

// writeFieldError answers 400 naming the field at fault, never its value.
func writeFieldError(w http.ResponseWriter, fe *fieldError) {
	writeJSON(w, http.StatusBadRequest, errorWire{Error: fmt.Sprintf("%s: %s", fe.field, fe.reason), Field: fe.field})
}

// notFound answers 404 for an unknown resource.
func notFound(w http.ResponseWriter) { writeError(w, http.StatusNotFound, "not found") }
