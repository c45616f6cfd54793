package tokens

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// adminFixture is an embedded store with its admin API served over loopback.
type adminFixture struct {
	e    *Embedded
	url  string
	logs *logBuffer
}

// startAdmin serves the admin API of a new embedded store; own is the
// proxy's listeners a mint may not name.
func startAdmin(t *testing.T, secret string, own ...netip.AddrPort) *adminFixture {
	t.Helper()
	log, lb := newLog()
	e, err := OpenEmbedded(EmbeddedConfig{Dir: t.TempDir(), Logger: log, PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := listenAdmin("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveAdmin(ctx, ln, e.AdminHandler([]byte(secret), own), log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		e.Close()
	})
	return &adminFixture{e: e, url: "http://" + ln.Addr().String(), logs: lb}
}

// do sends a request with the Authorization header auth ("" for none) and
// returns the status and body.
func (fx *adminFixture) do(t *testing.T, method, path, auth string, body io.Reader) (int, string) {
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

const mintBody = `{"console_type":"novnc","host":"127.0.0.1","port":5901,"instance_uuid":"6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab","ttl_seconds":60}`

func TestAdminAuth(t *testing.T) {
	fx := startAdmin(t, testSecret)
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "Bearer " + testSecret + "x",
		"Bearer " + testSecret[:len(testSecret)-1], "Basic " + testSecret, testSecret} {
		for _, method := range []string{"POST", "GET", "DELETE"} {
			code, body := fx.do(t, method, "/v1/tokens", auth, strings.NewReader(mintBody))
			if code != http.StatusUnauthorized || body != "unauthorized\n" {
				t.Errorf("%s with %q: %d %q", method, auth, code, body)
			}
		}
	}
	if fx.e.Len() != 0 {
		t.Errorf("a refused request minted a token")
	}
	for _, auth := range []string{"Bearer " + testSecret, "bearer " + testSecret, "BEARER  " + testSecret + " "} {
		if code, _ := fx.do(t, "POST", "/v1/tokens", auth, strings.NewReader(mintBody)); code != http.StatusCreated {
			t.Errorf("%q: %d", auth, code)
		}
	}
}

func TestAdminEmptySecretRefusesAll(t *testing.T) {
	fx := startAdmin(t, "")
	for _, auth := range []string{"", "Bearer ", "Bearer x"} {
		if code, _ := fx.do(t, "POST", "/v1/tokens", auth, strings.NewReader(mintBody)); code != http.StatusUnauthorized {
			t.Errorf("%q: %d", auth, code)
		}
	}
}

func TestAdminMintRevoke(t *testing.T) {
	fx := startAdmin(t, testSecret)
	auth := "Bearer " + testSecret
	code, body := fx.do(t, "POST", "/v1/tokens", auth, strings.NewReader(mintBody))
	if code != http.StatusCreated {
		t.Fatalf("mint: %d %s", code, body)
	}
	var ans struct {
		Token        string `json:"token"`
		Expires      int64  `json:"expires"`
		InstanceUUID string `json:"instance_uuid"`
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil || len(ans.Token) != 43 || ans.InstanceUUID != "6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab" {
		t.Fatalf("answer %s: %v", body, err)
	}
	h := HashToken([]byte(ans.Token))
	rec, err := fx.e.Lookup(context.Background(), h)
	if err != nil || rec.Expires != ans.Expires || rec.Port != 5901 {
		t.Fatalf("lookup: %+v %v", rec, err)
	}
	for path, want := range map[string]int{
		"/v1/tokens/" + h.Hex():                  http.StatusNoContent,
		"/v1/tokens/" + HashToken(nil).Hex():     http.StatusNotFound,
		"/v1/tokens/" + strings.ToUpper(h.Hex()): http.StatusBadRequest,
		"/v1/tokens/abc":                         http.StatusBadRequest,
	} {
		if code, body := fx.do(t, "DELETE", path, auth, nil); code != want {
			t.Errorf("DELETE %s: %d %s, want %d", path, code, body, want)
		}
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

func TestAdminBadRequests(t *testing.T) {
	fx := startAdmin(t, testSecret)
	auth := "Bearer " + testSecret
	huge := `{"console_type":"novnc","host":"` + strings.Repeat("h", maxAdminBody) + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"GET", "GET", "/v1/tokens", "", http.StatusMethodNotAllowed},
		{"PUT", "PUT", "/v1/tokens", mintBody, http.StatusMethodNotAllowed},
		{"POST to a hash", "POST", "/v1/tokens/" + HashToken(nil).Hex(), mintBody, http.StatusMethodNotAllowed},
		{"unknown path", "POST", "/v2/tokens", mintBody, http.StatusNotFound},
		{"oversized", "POST", "/v1/tokens", huge, http.StatusRequestEntityTooLarge},
		{"bad JSON", "POST", "/v1/tokens", `{"host":`, http.StatusBadRequest},
		{"empty", "POST", "/v1/tokens", ``, http.StatusBadRequest},
		{"unknown field", "POST", "/v1/tokens", strings.Replace(mintBody, `"port"`, `"prot":1,"port"`, 1), http.StatusBadRequest},
		{"trailing data", "POST", "/v1/tokens", mintBody + `{}`, http.StatusBadRequest},
		{"wrong type", "POST", "/v1/tokens", strings.Replace(mintBody, `5901`, `"5901"`, 1), http.StatusBadRequest},
		{"bad host", "POST", "/v1/tokens", strings.Replace(mintBody, `127.0.0.1`, `a b`, 1), http.StatusBadRequest},
		{"ttl over 24h", "POST", "/v1/tokens", strings.Replace(mintBody, `:60}`, `:86401}`, 1), http.StatusBadRequest},
		{"negative ttl", "POST", "/v1/tokens", strings.Replace(mintBody, `:60}`, `:-1}`, 1), http.StatusBadRequest},
		{"huge ttl", "POST", "/v1/tokens", strings.Replace(mintBody, `:60}`, `:9223372036854775807}`, 1), http.StatusBadRequest},
	} {
		code, body := fx.do(t, tc.method, tc.path, auth, bytes.NewBufferString(tc.body))
		if code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, code, body, tc.want)
		}
		if strings.Contains(body, "a b") {
			t.Errorf("%s: the answer repeats a value: %q", tc.name, body)
		}
	}
	if fx.e.Len() != 0 {
		t.Errorf("Len = %d after bad requests", fx.e.Len())
	}
}

// TestAdminMintOwnListener: a mint whose host and port name one of the
// proxy's own listeners is refused with 400 naming the fields (never the
// values), an IP address or localhost, the listener on one address or on
// all of them; the same host on another port, or another host on that
// port, is minted.
func TestAdminMintOwnListener(t *testing.T) {
	fx := startAdmin(t, testSecret, netip.MustParseAddrPort("127.0.0.1:9180"), netip.MustParseAddrPort("[::]:6080"))
	auth := "Bearer " + testSecret
	body := func(host string, port int) io.Reader {
		return strings.NewReader(strings.Replace(strings.Replace(mintBody, `"127.0.0.1"`, `"`+host+`"`, 1), "5901", strconv.Itoa(port), 1))
	}
	for _, tc := range []struct {
		host string
		port int
	}{{"127.0.0.1", 9180}, {"localhost", 9180}, {"LOCALHOST.", 9180}, {"::ffff:127.0.0.1", 9180}, {"0.0.0.0", 9180},
		{"::", 9180}, {"127.0.0.1", 6080}, {"127.9.9.9", 6080}, {"::1", 6080}, {"localhost", 6080}} {
		code, got := fx.do(t, "POST", "/v1/tokens", auth, body(tc.host, tc.port))
		if code != http.StatusBadRequest || got != errOwnListener.Error()+"\n" {
			t.Errorf("mint to %s:%d: %d %q, want 400 %q", tc.host, tc.port, code, got, errOwnListener)
		}
	}
	if fx.e.Len() != 0 {
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
