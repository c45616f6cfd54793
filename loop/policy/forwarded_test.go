package policy

import (
	"net/netip"
	"testing"
)

func bs(ss ...string) [][]byte {
	var out [][]byte
	for _, s := range ss {
		out = append(out, []byte(s))
	}
	return out
}

func TestClientView(t *testing.T) {
	tp, err := ParseTrustedProxies("10.0.0.0/8, 2001:db8:cafe::/48, 192.0.2.60")
	if err != nil {
		t.Fatal(err)
	}
	lb := netip.MustParseAddr("10.1.2.3")
	stranger := netip.MustParseAddr("203.0.113.9")
	tests := []struct {
		name     string
		peer     netip.Addr
		tls      bool
		xfp, xff [][]byte
		fwd      [][]byte
		secure   bool
		client   string
		wantErr  bool
	}{
		{"untrusted peer: headers ignored", stranger, false, bs("https"), bs("1.2.3.4"), nil, false, "203.0.113.9", false},
		{"untrusted peer over tls", stranger, true, bs("http"), nil, nil, true, "203.0.113.9", false},
		{"trusted X-Forwarded-Proto https", lb, false, bs("https"), bs("198.51.100.7"), nil, true, "198.51.100.7", false},
		{"last proto value wins", lb, false, bs("http, https"), nil, nil, true, "10.1.2.3", false},
		{"XFF skips trusted hops", lb, false, nil, bs("198.51.100.7, 10.9.9.9"), nil, false, "198.51.100.7", false},
		{"XFF spoofed left part ignored", lb, false, nil, bs("1.1.1.1, 198.51.100.7"), nil, false, "198.51.100.7", false},
		{"RFC 7239 §4 example", lb, false, nil, nil, bs(`for="_gazonk"`), false, "10.1.2.3", false},
		{"RFC 7239 §4 IPv6 for", lb, false, nil, nil, bs(`For="[2001:db8:cafe::17]:4711"`), false, "2001:db8:cafe::17", false},
		{"RFC 7239 §4 proto", lb, false, nil, nil, bs(`for=192.0.2.60;proto=http;by=203.0.113.43`), false, "192.0.2.60", false},
		{"RFC 7239 §4 list", lb, false, nil, nil, bs(`for=192.0.2.43, for=198.51.100.17;proto=https`), true, "198.51.100.17", false},
		{"Forwarded and XFP agree", lb, false, bs("https"), nil, bs("proto=https"), true, "10.1.2.3", false},
		{"Forwarded and XFP disagree", lb, false, bs("http"), nil, bs("proto=https"), false, "", true},
		{"unknown proto", lb, false, bs("gopher"), nil, nil, false, "", true},
		{"quoted comma", lb, false, nil, nil, bs(`for="198.51.100.1";x="a,b";proto=https`), true, "198.51.100.1", false},
		{"mapped peer", netip.MustParseAddr("::ffff:10.1.2.3"), false, bs("https"), nil, nil, true, "10.1.2.3", false},
	}
	for _, tc := range tests {
		secure, client, err := tp.ClientView(tc.peer, tc.tls, tc.xfp, tc.xff, tc.fwd)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: no error", tc.name)
			}
			continue
		}
		if err != nil || secure != tc.secure || client.String() != tc.client {
			t.Errorf("%s: secure %v client %v err %v; want %v %s", tc.name, secure, client, err, tc.secure, tc.client)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "host.example", "1.2.3"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	tp, _ := ParseTrustedProxies("::ffff:10.0.0.0/104")
	if !tp.Contains(netip.MustParseAddr("10.1.1.1")) {
		t.Error("4-in-6 prefix not unmapped")
	}
}

func FuzzForwarded(f *testing.F) {
	f.Add("https", "1.2.3.4, 10.0.0.1", `for="[2001:db8::1]:80";proto=https`)
	f.Add("", "", `for=unknown, for="_x";proto="http"`)
	tp, _ := ParseTrustedProxies("10.0.0.0/8")
	f.Fuzz(func(t *testing.T, xfp, xff, fwd string) {
		peer := netip.MustParseAddr("10.0.0.1")
		_, client, err := tp.ClientView(peer, false, bs(xfp), bs(xff), bs(fwd))
		if err == nil && !client.IsValid() {
			t.Fatal("invalid client address")
		}
		// An untrusted peer's headers never matter.
		s, c, err := tp.ClientView(netip.MustParseAddr("192.0.2.1"), true, bs(xfp), bs(xff), bs(fwd))
		if err != nil || !s || c.String() != "192.0.2.1" {
			t.Fatalf("untrusted peer's headers used: %v %v %v", s, c, err)
		}
	})
}
