package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

const testSecret = "0123456789abcdef0123456789abcdef"

const testUUID = "6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab"

const mintBody = `{"console_type":"novnc","host":"127.0.0.1","port":5901,"instance_uuid":"` + testUUID + `","ttl_seconds":60}`

// fixture is an admin API served over loopback.
type fixture struct {
	url     string
	logs    *testutil.LogBuffer
	revoked []tokens.Hash
}

// serveAPI serves the API of cfg (Secret, Logger and Revoked filled in
// when empty) on a loopback port until the test ends.
func serveAPI(t *testing.T, cfg Config) *fixture {
	t.Helper()
	fx := &fixture{logs: &testutil.LogBuffer{}}
	if cfg.Secret == nil {
		cfg.Secret = []byte(testSecret)
	}
	if cfg.ConsoleType == "" {
		cfg.ConsoleType = "novnc"
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "https://console.example.com:6080/vnc_lite.html"
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(fx.logs, nil))
	if cfg.Revoked == nil {
		cfg.Revoked = func(_ context.Context, h tokens.Hash) error { fx.revoked = append(fx.revoked, h); return nil }
	}
	api, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, api, cfg.Logger) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	fx.url = "http://" + ln.Addr().String()
	return fx
}

// embedded opens an embedded store in a temporary directory.
func embedded(t *testing.T) *tokens.Embedded {
	t.Helper()
	e, err := tokens.OpenEmbedded(tokens.EmbeddedConfig{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// do sends a request with the Authorization header auth ("" for none) and
// returns the status and body.
func (fx *fixture) do(t *testing.T, method, path, auth string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, fx.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const auth = "Bearer " + testSecret

// answer is a mint's 201 body.
type answer struct {
	Token        string `json:"token"`
	TokenHash    string `json:"token_hash"`
	Expires      int64  `json:"expires"`
	InstanceUUID string `json:"instance_uuid"`
	URL          string `json:"url"`
}

// mintOK mints body and decodes the 201 answer.
func (fx *fixture) mintOK(t *testing.T, body string) answer {
	t.Helper()
	code, got := fx.do(t, "POST", "/v1/tokens", auth, strings.NewReader(body))
	if code != http.StatusCreated {
		t.Fatalf("mint: %d %s", code, got)
	}
	var a answer
	if err := json.Unmarshal([]byte(got), &a); err != nil {
		t.Fatalf("answer %s: %v", got, err)
	}
	return a
}

func TestAuth(t *testing.T) {
	e := embedded(t)
	fx := serveAPI(t, Config{Store: e})
	for _, h := range []string{"", "Bearer", "Bearer ", "Bearer wrong", auth + "x",
		auth[:len(auth)-1], "Basic " + testSecret, testSecret} {
		for _, tc := range []struct{ method, path string }{{"POST", "/v1/tokens"}, {"GET", "/v1/tokens"},
			{"DELETE", "/v1/tokens/" + tokens.HashToken(nil).Hex()}, {"GET", "/v1/sessions"}, {"DELETE", "/v1/sessions/1"}} {
			code, body := fx.do(t, tc.method, tc.path, h, strings.NewReader(mintBody))
			if code != http.StatusUnauthorized || body != `{"error":"unauthorized"}`+"\n" {
				t.Errorf("%s %s with %q: %d %q", tc.method, tc.path, h, code, body)
			}
		}
	}
	if e.Len() != 0 {
		t.Errorf("a refused request minted a token")
	}
	for _, h := range []string{auth, "bearer " + testSecret, "BEARER  " + testSecret + " "} {
		if code, _ := fx.do(t, "POST", "/v1/tokens", h, strings.NewReader(mintBody)); code != http.StatusCreated {
			t.Errorf("%q: %d", h, code)
		}
	}
}

func TestEmptySecretRefusesAll(t *testing.T) {
	fx := serveAPI(t, Config{Store: embedded(t), Secret: []byte{}})
	for _, h := range []string{"", "Bearer ", "Bearer x"} {
		if code, _ := fx.do(t, "POST", "/v1/tokens", h, strings.NewReader(mintBody)); code != http.StatusUnauthorized {
			t.Errorf("%q: %d", h, code)
		}
	}
}

// TestMintRevoke: a mint answers the token, its hash, its expiry, the
// instance and the console URL in noVNC's form; the store holds the
// record; DELETE removes it (and tells Revoked), then 404. No secret
// reaches the log.
func TestMintRevoke(t *testing.T) {
	e := embedded(t)
	fx := serveAPI(t, Config{Store: e})
	before := time.Now().Unix()
	ans := fx.mintOK(t, mintBody)
	h := tokens.HashToken([]byte(ans.Token))
	if len(ans.Token) != 43 || ans.TokenHash != h.Hex() || ans.InstanceUUID != testUUID ||
		ans.Expires < before+60 || ans.Expires > time.Now().Unix()+60 {
		t.Fatalf("answer %+v", ans)
	}
	if want := "https://console.example.com:6080/vnc_lite.html?path=%3Ftoken%3D" + ans.Token; ans.URL != want {
		t.Errorf("url %q, want %q", ans.URL, want)
	}
	rec, err := e.Lookup(context.Background(), h)
	if err != nil || rec.Expires != ans.Expires || rec.Port != 5901 || rec.ConsoleType != "novnc" {
		t.Fatalf("lookup: %+v %v", rec, err)
	}
	for path, want := range map[string]int{
		"/v1/tokens/" + h.Hex():                     http.StatusNoContent,
		"/v1/tokens/" + tokens.HashToken(nil).Hex(): http.StatusNotFound,
		"/v1/tokens/" + strings.ToUpper(h.Hex()):    http.StatusBadRequest,
		"/v1/tokens/abc":                            http.StatusBadRequest,
	} {
		if code, body := fx.do(t, "DELETE", path, auth, nil); code != want {
			t.Errorf("DELETE %s: %d %s, want %d", path, code, body, want)
		}
	}
	if len(fx.revoked) != 1 || fx.revoked[0] != h {
		t.Errorf("Revoked told %d times", len(fx.revoked))
	}
	if _, err := e.Lookup(context.Background(), h); err == nil {
		t.Error("the record is still there")
	}
	if code, _ := fx.do(t, "DELETE", "/v1/tokens/"+h.Hex(), auth, nil); code != http.StatusNotFound {
		t.Errorf("second DELETE: %d", code)
	}
	out := fx.logs.String()
	for _, secret := range []string{ans.Token, h.Hex(), testSecret} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds a secret:\n%s", out)
		}
	}
}

// TestMintDefaults: without console_type the proxy's own is minted;
// without ttl_seconds the token lives tokens.DefaultTTL; another console
// kind gets ?token= (Nova's access_url), and a --public-url with a query
// keeps it.
func TestMintDefaults(t *testing.T) {
	e := embedded(t)
	fx := serveAPI(t, Config{Store: e, ConsoleType: "serial", PublicURL: "ws://console.example.com:6083/?lang=en"})
	before := time.Now().Add(tokens.DefaultTTL).Unix()
	ans := fx.mintOK(t, `{"host":"compute-1.example","port":10000,"instance_uuid":"`+strings.ToUpper(testUUID)+`"}`)
	if ans.Expires < before || ans.Expires > time.Now().Add(tokens.DefaultTTL).Unix() {
		t.Errorf("expires %d, want now + %v", ans.Expires, tokens.DefaultTTL)
	}
	if want := "ws://console.example.com:6083/?lang=en&token=" + ans.Token; ans.URL != want {
		t.Errorf("url %q, want %q", ans.URL, want)
	}
	rec, err := e.Lookup(context.Background(), tokens.HashToken([]byte(ans.Token)))
	if err != nil || rec.ConsoleType != "serial" {
		t.Fatalf("lookup: %+v %v", rec, err)
	}
}

// TestMintInvalidFields: each invalid field is a 400 whose JSON names the
// field and never repeats the value; nothing is stored.
func TestMintInvalidFields(t *testing.T) {
	e := embedded(t)
	fx := serveAPI(t, Config{Store: e})
	with := func(field, value string) string {
		var m map[string]any
		_ = json.Unmarshal([]byte(mintBody), &m)
		var v any
		dec := json.NewDecoder(strings.NewReader(value))
		dec.UseNumber() // 2^63-1 stays itself
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		m[field] = v
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, tc := range []struct{ field, value string }{
		{"port", `0`}, {"port", `65536`}, {"port", `-5`},
		{"console_type", `"spice-html5"`}, {"console_type", `"rdp"`}, {"console_type", `"NOVNC"`},
		{"instance_uuid", `""`}, {"instance_uuid", `"not-a-uuid"`}, {"instance_uuid", `"6f5b8a3c1e2d4c5b9a8f0123456789ab"`},
		{"instance_uuid", `"6f5b8a3c-1e2d-4c5b-9a8f-0123456789ag"`}, {"instance_uuid", `"{6f5b8a3c-1e2d-4c5b-9a8f-0123456789a}"`},
		{"internal_access_path", `""`}, {"internal_access_path", `"nopath"`}, {"internal_access_path", `"/a b"`},
		{"internal_access_path", `"/x\r\nX-Evil: 1"`}, {"internal_access_path", `"/%zz"`},
		{"ttl_seconds", `0`}, {"ttl_seconds", `-1`}, {"ttl_seconds", `86401`}, {"ttl_seconds", `9223372036854775807`},
		{"host", `""`}, {"host", `"a b"`}, {"host", `"h\r\nX: 1"`}, {"host", `"fe80::1%eth0"`},
		{"access_url_base", `"ftp://console.example.com/"`}, {"access_url_base", `"console.example.com"`},
	} {
		code, body := fx.do(t, "POST", "/v1/tokens", auth, strings.NewReader(with(tc.field, tc.value)))
		var got errorWire
		_ = json.Unmarshal([]byte(body), &got)
		if code != http.StatusBadRequest || got.Field != tc.field || !strings.HasPrefix(got.Error, tc.field+": ") {
			t.Errorf("%s=%s: %d %s, want 400 naming %s", tc.field, tc.value, code, body, tc.field)
		}
		if v := strings.Trim(tc.value, `"`); len(v) > 2 && strings.Contains(body, v) {
			t.Errorf("%s=%s: the answer repeats the value: %s", tc.field, tc.value, body)
		}
	}
	if e.Len() != 0 {
		t.Errorf("Len = %d after invalid mints", e.Len())
	}
	for _, tc := range []struct{ field, value string }{
		{"internal_access_path", `"/vnc?token=x&a=%2F"`}, {"internal_access_path", `null`},
		{"access_url_base", `"https://console.example.com/vnc_lite.html"`}, {"access_url_base", `"WSS://c.example"`},
		{"ttl_seconds", `86400`}, {"ttl_seconds", `1`}, {"port", `65535`}, {"port", `1`}, {"host", `"::1"`},
		{"host", `"compute_1.example"`}, {"instance_uuid", `"6F5B8A3C-1E2D-4C5B-9A8F-0123456789AB"`},
	} {
		if code, body := fx.do(t, "POST", "/v1/tokens", auth, strings.NewReader(with(tc.field, tc.value))); code != http.StatusCreated {
			t.Errorf("%s=%s: %d %s, want 201", tc.field, tc.value, code, body)
		}
	}
}

func TestBadRequests(t *testing.T) {
	e := embedded(t)
	fx := serveAPI(t, Config{Store: e})
	huge := `{"console_type":"novnc","host":"` + strings.Repeat("h", maxBody) + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"GET", "GET", "/v1/tokens", "", http.StatusMethodNotAllowed},
		{"PUT", "PUT", "/v1/tokens", mintBody, http.StatusMethodNotAllowed},
		{"POST to a hash", "POST", "/v1/tokens/" + tokens.HashToken(nil).Hex(), mintBody, http.StatusMethodNotAllowed},
		{"POST to sessions", "POST", "/v1/sessions", mintBody, http.StatusMethodNotAllowed},
		{"unknown path", "POST", "/v2/tokens", mintBody, http.StatusNotFound},
		{"oversized", "POST", "/v1/tokens", huge, http.StatusRequestEntityTooLarge},
		{"bad JSON", "POST", "/v1/tokens", `{"host":`, http.StatusBadRequest},
		{"empty", "POST", "/v1/tokens", ``, http.StatusBadRequest},
		{"unknown field", "POST", "/v1/tokens", strings.Replace(mintBody, `"port"`, `"prot":1,"port"`, 1), http.StatusBadRequest},
		{"trailing data", "POST", "/v1/tokens", mintBody + `{}`, http.StatusBadRequest},
		{"wrong type", "POST", "/v1/tokens", strings.Replace(mintBody, `5901`, `"5901"`, 1), http.StatusBadRequest},
		{"unknown session", "DELETE", "/v1/sessions/12", "", http.StatusNotFound},
		{"bad session id", "DELETE", "/v1/sessions/a b", "", http.StatusNotFound},
	} {
		code, body := fx.do(t, tc.method, tc.path, auth, bytes.NewBufferString(tc.body))
		if code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, code, body, tc.want)
		}
	}
	if e.Len() != 0 {
		t.Errorf("Len = %d after bad requests", e.Len())
	}
}

// TestMintOwnListener: a mint whose host and port name one of the
// proxy's own listeners is refused with 400 naming the host field (never
// the value), an IP address or localhost, the listener on one address or
// on all of them; the same host on another port, or another host on that
// port, is minted.
func TestMintOwnListener(t *testing.T) {
	e := embedded(t)
	fx := serveAPI(t, Config{Store: e, Own: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9180"), netip.MustParseAddrPort("[::]:6080")}})
	body := func(host string, port int) io.Reader {
		return strings.NewReader(strings.Replace(strings.Replace(mintBody, `"127.0.0.1"`, `"`+host+`"`, 1), "5901", strconv.Itoa(port), 1))
	}
	for _, tc := range []struct {
		host string
		port int
	}{{"127.0.0.1", 9180}, {"localhost", 9180}, {"LOCALHOST.", 9180}, {"::ffff:127.0.0.1", 9180}, {"0.0.0.0", 9180},
		{"::", 9180}, {"127.0.0.1", 6080}, {"127.9.9.9", 6080}, {"::1", 6080}, {"localhost", 6080}} {
		code, got := fx.do(t, "POST", "/v1/tokens", auth, body(tc.host, tc.port))
		if code != http.StatusBadRequest || !strings.Contains(got, `"field":"host"`) || !strings.Contains(got, errOwnListener.Error()) {
			t.Errorf("mint to %s:%d: %d %q, want 400 %q", tc.host, tc.port, code, got, errOwnListener)
		}
	}
	if e.Len() != 0 {
		t.Fatalf("a refused mint stored a token")
	}
	for _, tc := range []struct {
		host string
		port int
	}{{"127.0.0.1", 9181}, {"127.0.0.2", 9180}, {"192.0.2.10", 9180}, {"compute-1.example", 9180}} {
		if code, _ := fx.do(t, "POST", "/v1/tokens", auth, body(tc.host, tc.port)); code != http.StatusCreated {
			t.Errorf("mint to %s:%d: %d, want 201", tc.host, tc.port, code)
		}
	}
}

// TestReadOnlyStore: a file: store is read-only: mint and revoke get 409
// and the file is untouched; the sessions API still answers.
func TestReadOnlyStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.jsonl")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fs, err := tokens.OpenFile(tokens.FileConfig{Path: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	fx := serveAPI(t, Config{Store: fs})
	if code, body := fx.do(t, "POST", "/v1/tokens", auth, strings.NewReader(mintBody)); code != http.StatusConflict {
		t.Errorf("mint: %d %s, want 409", code, body)
	}
	if code, body := fx.do(t, "DELETE", "/v1/tokens/"+tokens.HashToken(nil).Hex(), auth, nil); code != http.StatusConflict {
		t.Errorf("revoke: %d %s, want 409", code, body)
	}
	if data, _ := os.ReadFile(path); len(data) != 0 {
		t.Errorf("the token file was written: %q", data)
	}
	if code, body := fx.do(t, "GET", "/v1/sessions", auth, nil); code != http.StatusOK || body != "[]\n" {
		t.Errorf("sessions: %d %q", code, body)
	}
}

func TestPublicURLChecked(t *testing.T) {
	for _, bad := range []string{"", "vnc_lite.html", "/vnc_lite.html", "ftp://h/x", "http:///x", "http://u:p@h/x", "http://h/x#frag", "http://h/%zz"} {
		if _, err := New(Config{Store: embedded(t), PublicURL: bad, ConsoleType: "novnc"}); err == nil || !strings.Contains(err.Error(), "--public-url") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	u, _ := url.Parse("https://h:1/vnc_lite.html")
	if _, err := New(Config{Store: embedded(t), PublicURL: u.String(), ConsoleType: "novnc"}); err != nil {
		t.Error(err)
	}
}
