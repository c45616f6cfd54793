package wsframe

import (
	"slices"
	"strings"
	"testing"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// upgradeWith is a valid upgrade request changed: "Name: value" replaces the
// base's header of that name (several with one name are all kept), "-Name"
// drops it, and a change without colon or '-' replaces the method GET.
func upgradeWith(changes ...string) string {
	method := "GET"
	base := []string{"Host: h", "Upgrade: websocket", "Connection: Upgrade",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"}
	var added []string
	for _, c := range changes {
		name, _, isField := strings.Cut(c, ":")
		if !isField && !strings.HasPrefix(c, "-") {
			method = c
			continue
		}
		name = strings.TrimPrefix(name, "-")
		base = slices.DeleteFunc(base, func(f string) bool { return strings.HasPrefix(f, name+":") })
		if isField {
			added = append(added, c)
		}
	}
	return head(append(append([]string{method + " /websockify HTTP/1.1"}, base...), added...)...)
}

// RFC 6455 §4.2.1 and §4.2.2.
func TestCheckUpgrade(t *testing.T) {
	for _, tc := range []struct {
		name    string
		input   string
		status  int
		upgrade bool // IsUpgrade
	}{
		{"RFC 6455 §1.3 handshake", rfcHandshake, 0, true},
		{"noVNC from Chromium", noVNCRequest, 0, true},
		{"minimal", upgradeWith(), 0, true},
		{"static GET", head("GET /vnc.html HTTP/1.1", "Host: h"), 400, false},
		{"POST", upgradeWith("POST"), 400, true},
		{"get lowercase", upgradeWith("get"), 400, true},
		{"Upgrade case", upgradeWith("Upgrade: WebSocket"), 0, true},
		{"Upgrade list", upgradeWith("Upgrade: h2c, websocket"), 0, true},
		{"Upgrade other", upgradeWith("Upgrade: websocketx"), 400, false},
		{"Upgrade missing", upgradeWith("-Upgrade"), 400, false},
		{"Connection list", upgradeWith("Connection: keep-alive, Upgrade"), 0, true},
		{"Connection lowercase", upgradeWith("Connection: upgrade"), 0, true},
		{"Connection in two headers", upgradeWith("Connection: keep-alive", "X: y", "Connection: Upgrade"), 0, true},
		{"Connection keep-alive only", upgradeWith("Connection: keep-alive"), 400, true},
		{"Connection upgraded", upgradeWith("Connection: upgraded"), 400, true},
		{"Connection missing", upgradeWith("-Connection"), 400, true},
		{"Key missing", upgradeWith("-Sec-WebSocket-Key"), 400, true},
		{"Key 15 bytes", upgradeWith("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA"), 400, true},
		{"Key 17 bytes", upgradeWith("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA="), 400, true},
		{"Key unpadded", upgradeWith("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"), 400, true},
		{"Key not base64", upgradeWith("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ!=="), 400, true},
		{"Key URL alphabet", upgradeWith("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j_-=="), 400, true},
		{"Key trailing bits", upgradeWith("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="), 400, true},
		{"Key OWS", upgradeWith("Sec-WebSocket-Key:  dGhlIHNhbXBsZSBub25jZQ== "), 0, true},
		{"Version missing", upgradeWith("-Sec-WebSocket-Version"), 400, true},
		{"Version 8", upgradeWith("Sec-WebSocket-Version: 8"), 426, true},
		{"Version list", upgradeWith("Sec-WebSocket-Version: 13, 8"), 426, true},
		{"Version 013", upgradeWith("Sec-WebSocket-Version: 013"), 426, true},
		{"Version wrong, Key missing", upgradeWith("Sec-WebSocket-Version: 7", "-Sec-WebSocket-Key"), 426, true},
		{"extensions ignored", upgradeWith("Sec-WebSocket-Extensions: permessage-deflate"), 0, true},
	} {
		_, r, err := parseWhole([]byte(tc.input), RequestLimits{})
		if err != nil {
			t.Fatalf("%s: parse: %v", tc.name, err)
		}
		if got := statusOf(r.CheckUpgrade()); got != tc.status {
			t.Errorf("%s: status %d (%v), want %d", tc.name, got, r.CheckUpgrade(), tc.status)
		}
		if r.IsUpgrade() != tc.upgrade {
			t.Errorf("%s: IsUpgrade %v", tc.name, r.IsUpgrade())
		}
	}
}

// docs/contract.md "Subprotocols": binary when offered, else base64, else none.
func TestChooseProtocol(t *testing.T) {
	for _, tc := range []struct {
		offers []string // one Sec-WebSocket-Protocol header each
		want   string
		all    string // every offer, in order
	}{
		{nil, "", ""},
		{[]string{"binary"}, "binary", "binary"},
		{[]string{"base64"}, "base64", "base64"},
		{[]string{"base64, binary"}, "binary", "base64|binary"},
		{[]string{"base64", "binary"}, "binary", "base64|binary"},
		{[]string{" , chat ,,binary\t, base64"}, "binary", "chat|binary|base64"},
		{[]string{"chat, superchat"}, "", "chat|superchat"},
		{[]string{"Binary, BASE64"}, "", "Binary|BASE64"}, // RFC 6455 §4.1: case-sensitive
		{[]string{""}, "", ""},
	} {
		fields := []string{"Host: h"}
		for _, o := range tc.offers {
			fields = append(fields, "Sec-WebSocket-Protocol: "+o)
		}
		_, r, err := parseWhole([]byte(upgradeWith(fields...)), RequestLimits{})
		if err != nil {
			t.Fatal(err)
		}
		var all []string
		r.Protocols(func(p []byte) bool { all = append(all, string(p)); return true })
		if got := ChooseProtocol(r); string(got) != tc.want || (got == nil) != (tc.want == "") {
			t.Errorf("%q: chose %q", tc.offers, got)
		}
		if strings.Join(all, "|") != tc.all {
			t.Errorf("%q: offers %q", tc.offers, all)
		}
	}
}

func TestProtocolsStops(t *testing.T) {
	_, r, _ := parseWhole([]byte(upgradeWith("Sec-WebSocket-Protocol: a, b", "X: 1", "Sec-WebSocket-Protocol: c")), RequestLimits{})
	var seen []string
	r.Protocols(func(p []byte) bool { seen = append(seen, string(p)); return string(p) != "b" })
	if strings.Join(seen, "|") != "a|b" {
		t.Errorf("saw %q", seen)
	}
}

// ChooseProtocol answers with shared static slices, never the request's.
func TestChooseProtocolStatic(t *testing.T) {
	_, r, _ := parseWhole([]byte(noVNCRequest), RequestLimits{})
	if p := ChooseProtocol(r); &p[0] != &ProtocolBinary[0] {
		t.Error("not the static slice")
	}
}

// Parse, CheckUpgrade and ChooseProtocol do not allocate on a typical request.
func TestRequestNoAllocations(t *testing.T) {
	if testutil.Race {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	buf := []byte(noVNCRequest)
	var p RequestParser
	r := new(Request)
	n := testing.AllocsPerRun(100, func() {
		p.Reset()
		if _, err := p.Parse(buf, RequestLimits{}, r); err != nil {
			panic(err)
		}
		if err := r.CheckUpgrade(); err != nil || ChooseProtocol(r) == nil {
			panic(err)
		}
		var k int
		r.Values("Cookie", func(v []byte) { k += len(v) })
	})
	if n != 0 {
		t.Errorf("%v allocations per run", n)
	}
	bad := []byte(upgradeWith("Sec-WebSocket-Version: 8"))
	n = testing.AllocsPerRun(100, func() {
		p.Reset()
		_, _ = p.Parse(bad, RequestLimits{}, r)
		_ = r.CheckUpgrade()
	})
	if n != 0 {
		t.Errorf("refusal: %v allocations per run", n)
	}
}
