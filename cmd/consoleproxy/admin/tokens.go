package admin

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// maxBody caps an admin request body.
const maxBody = 16 << 10

// mintWire is the JSON body of POST /v1/tokens.
type mintWire struct {
	ConsoleType        string  `json:"console_type"` // "" means the proxy's own
	Host               string  `json:"host"`
	Port               int     `json:"port"`
	InstanceUUID       string  `json:"instance_uuid"`
	InternalAccessPath *string `json:"internal_access_path"`
	AccessURLBase      string  `json:"access_url_base"`
	TTLSeconds         *int64  `json:"ttl_seconds"` // absent: DefaultTTL
}

// mintAnswer is the JSON body of a 201 answer: the token, once.
type mintAnswer struct {
	Token        string `json:"token"`
	TokenHash    string `json:"token_hash"`
	Expires      int64  `json:"expires"`
	InstanceUUID string `json:"instance_uuid"`
	URL          string `json:"url"`
}

// mint answers POST /v1/tokens: 201 with the token and its console URL,
// 400 naming an invalid field, 409 when the store is read-only, 413 for a
// body over maxBody, 503 when the store cannot be written.
func (a *API) mint(w http.ResponseWriter, r *http.Request) {
	store, ok := a.cfg.Store.(tokens.Writable)
	if !ok {
		writeError(w, http.StatusConflict, "the token store is read-only")
		return
	}
	var body mintWire
	if status := decodeBody(w, r, &body); status != 0 {
		writeError(w, status, http.StatusText(status))
		return
	}
	req, fe := a.check(&body)
	if fe != nil {
		writeFieldError(w, fe)
		return
	}
	token, rec, err := store.Mint(r.Context(), req)
	switch {
	case errors.Is(err, tokens.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error()) // names a field, never a value
		return
	case err != nil:
		a.log.Warn("admin: mint failed", "err", err.Error())
		writeError(w, http.StatusServiceUnavailable, "token store unavailable")
		return
	}
	a.log.Info("admin: token minted", "instance", rec.InstanceUUID, "console_type", rec.ConsoleType, "expires", rec.Expires)
	writeJSON(w, http.StatusCreated, mintAnswer{Token: token, TokenHash: rec.TokenHash, Expires: rec.Expires,
		InstanceUUID: rec.InstanceUUID, URL: a.consoleURL(token)})
}

// consoleURL is --public-url with the token in the query, as Nova builds
// access_url: noVNC's form for novnc (path=, the URL-encoded "?token=…",
// which noVNC puts on its WebSocket URL), token= for the other kinds.
func (a *API) consoleURL(token string) string {
	u := *a.publicURL
	q := u.Query()
	if a.cfg.ConsoleType == "novnc" {
		q.Set("path", "?token="+token)
	} else {
		q.Set("token", token)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// revoke answers DELETE /v1/tokens/{token_hash}: 204 once the record is
// gone (and Revoked has been told), 404 for an unknown hash, 400 for one
// that is not 64 lowercase hex digits, 409 when the store is read-only.
func (a *API) revoke(w http.ResponseWriter, r *http.Request) {
	store, ok := a.cfg.Store.(tokens.Writable)
	if !ok {
		writeError(w, http.StatusConflict, "the token store is read-only")
		return
	}
	var h tokens.Hash
	s := r.PathValue("token_hash")
	if len(s) != hex.EncodedLen(len(h)) || !isLowerHex(s) {
		writeJSON(w, http.StatusBadRequest, errorWire{Error: "token_hash must be 64 lowercase hex digits", Field: "token_hash"})
		return
	}
	_, _ = hex.Decode(h[:], []byte(s))
	switch err := store.Revoke(r.Context(), h); {
	case errors.Is(err, tokens.ErrNotFound):
		notFound(w)
		return
	case err != nil:
		a.log.Warn("admin: revoke failed", "err", err.Error())
		writeError(w, http.StatusServiceUnavailable, "token store unavailable")
		return
	}
	if a.cfg.Revoked != nil {
		if err := a.cfg.Revoked(r.Context(), h); err != nil {
			a.log.Warn("admin: token revoked, but ending its live sessions failed", "err", err.Error())
		}
	}
	a.log.Info("admin: token revoked")
	w.WriteHeader(http.StatusNoContent)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// decodeBody reads one JSON object (unknown fields refused) from a body
// capped at maxBody. It returns 0, or the status to answer with.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) int {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
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

// ttl is the lifetime a mint asks for: DefaultTTL when ttl_seconds is
// absent; check has bounded it.
func ttl(sec *int64) time.Duration {
	if sec == nil {
		return tokens.DefaultTTL
	}
	return time.Duration(*sec) * time.Second
}
