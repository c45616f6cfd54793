package wsframe

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// readResponse parses b with net/http, requiring it to be exactly one
// response.
func readResponse(t *testing.T, b []byte) (*http.Response, string) {
	t.Helper()
	rd := bufio.NewReader(bytes.NewReader(b))
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if rd.Buffered() != 0 {
		t.Errorf("%q: %d bytes after the response", b, rd.Buffered())
	}
	return resp, string(body)
}

// RFC 6455 §1.3: the key of the example handshake and its accept value.
func TestAppendSwitchingRFCExample(t *testing.T) {
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==")
	if got := string(AppendAccept(nil, key)); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("accept %q", got)
	}
	for _, proto := range [][]byte{nil, ProtocolBinary, ProtocolBase64} {
		out := AppendSwitching([]byte("prefix"), key, proto)
		if !bytes.HasPrefix(out, []byte("prefixHTTP/1.1 101 Switching Protocols\r\n")) {
			t.Fatalf("%q", out)
		}
		resp, _ := readResponse(t, out[len("prefix"):])
		h := resp.Header
		if resp.StatusCode != 101 || h.Get("Upgrade") != "websocket" || h.Get("Connection") != "Upgrade" ||
			h.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
			t.Errorf("%q", out)
		}
		if got, ok := h["Sec-Websocket-Protocol"]; ok != (proto != nil) || (ok && got[0] != string(proto)) {
			t.Errorf("protocol %q for %q", got, proto)
		}
	}
}

// A long key (never valid, but AppendSwitching accepts anything) still hashes right.
func TestAppendAcceptLongKey(t *testing.T) {
	key := bytes.Repeat([]byte("k"), 300)
	want := AppendBase64(nil, sha1Sum(append(bytes.Clone(key), acceptGUID...)))
	if got := AppendAccept(nil, key); !bytes.Equal(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
}

func sha1Sum(b []byte) []byte {
	s := sha1.Sum(b)
	return s[:]
}

func TestAppendError(t *testing.T) {
	for _, status := range []int{400, 403, 404, 405, 426, 429, 431, 500, 502, 503, 504, 418, 0} {
		resp, body := readResponse(t, AppendError(nil, status))
		want := status
		if _, known := errorTexts[status]; !known {
			want = 500
		}
		h := resp.Header
		if resp.StatusCode != want || resp.Status != strconv.Itoa(want)+" "+errorTexts[want][0] {
			t.Errorf("%d: status %q", status, resp.Status)
		}
		if body != errorTexts[want][1] || h.Get("Content-Length") != strconv.Itoa(len(body)) ||
			h.Get("Content-Type") != "text/plain; charset=utf-8" || !resp.Close ||
			h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%d: %q %v", status, body, h)
		}
		if (h.Get("Sec-WebSocket-Version") == "13") != (want == 426) {
			t.Errorf("%d: Sec-WebSocket-Version %q", status, h.Get("Sec-WebSocket-Version"))
		}
		if (h.Get("Allow") == "GET, HEAD") != (want == 405) {
			t.Errorf("%d: Allow %q", status, h.Get("Allow"))
		}
	}
}

// The status line of each refusal the proxy sends (docs/contract.md's table),
// and an unknown status falling back to 500.
func TestAppendErrorStatusLine(t *testing.T) {
	for _, tc := range []struct {
		status int
		line   string
	}{
		{403, "HTTP/1.1 403 Forbidden\r\n"},
		{429, "HTTP/1.1 429 Too Many Requests\r\n"},
		{503, "HTTP/1.1 503 Service Unavailable\r\n"},
		{418, "HTTP/1.1 500 Internal Server Error\r\n"},
	} {
		if got := string(AppendError(nil, tc.status)); !strings.HasPrefix(got, tc.line) {
			t.Errorf("%d: %q, want prefix %q", tc.status, got, tc.line)
		}
	}
}

// Every refusal Parse or CheckUpgrade can return has a response.
func TestEveryRefusalHasAResponse(t *testing.T) {
	for _, tc := range allParseCases() {
		_, _, err := parseWhole([]byte(tc.input), tc.lim)
		if s := statusOf(err); s > 0 {
			if _, ok := errorTexts[s]; !ok {
				t.Errorf("%s: status %d has no response", tc.name, s)
			}
		}
	}
	if _, ok := errorTexts[errWSVersion.Status]; !ok {
		t.Error("no 426 response")
	}
}

func TestResponseNoAllocations(t *testing.T) {
	if testutil.Race {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==")
	dst := make([]byte, 0, 512)
	for name, f := range map[string]func(){
		"switching": func() { dst = AppendSwitching(dst[:0], key, ProtocolBinary) },
		"error":     func() { dst = AppendError(dst[:0], 431) },
		"unknown":   func() { dst = AppendError(dst[:0], 999) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per run", name, n)
		}
	}
}
