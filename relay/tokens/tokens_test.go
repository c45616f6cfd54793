package tokens

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// The example line of docs/contract.md "The token file", with a real UUID in
// place of its "…" and the hash of the token "secret-token".
const contractLine = `{"token_hash":"` + secretTokenHash + `","console_type":"novnc","host":"127.0.0.1","port":5900,` +
	`"internal_access_path":null,"instance_uuid":"6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab",` +
	`"access_url_base":"https://console.example.com:6080/vnc_lite.html","expires":1795000000}`

// secretTokenHash is SHA-256("secret-token") (sha256sum).
const secretTokenHash = "930bbdc51b6aed5c2a5678fd6e28dee7a05e8a4b643cfc0b4427c3efb86c0d94"

func TestHashToken(t *testing.T) {
	// FIPS 180-4 test vectors (and the empty string).
	for _, tc := range []struct{ in, hex string }{
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	} {
		if got := HashToken([]byte(tc.in)).Hex(); got != tc.hex {
			t.Errorf("HashToken(%q) = %s, want %s", tc.in, got, tc.hex)
		}
	}
}

func TestHashTokenAllocs(t *testing.T) {
	if testutil.Race {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	tok := []byte("Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE")
	if n := testing.AllocsPerRun(100, func() { _ = HashToken(tok) }); n != 0 {
		t.Errorf("HashToken allocates %v times, want 0", n)
	}
}

// parseCases are ParseRecord's table; each invalid case breaks one rule of
// docs/contract.md "The token file" (Nova's console_auth_tokens columns).
var parseCases = []struct {
	name string
	line string
	err  error // nil: valid
}{
	{"contract example", contractLine, nil},
	{"unknown fields ignored", strings.Replace(contractLine, `"port"`, `"future":{"x":[1,2]},"port"`, 1), nil},
	{"tls_port set", strings.Replace(contractLine, `"port":5900`, `"port":5900,"tls_port":5901`, 1), nil},
	{"internal_access_path set", strings.Replace(contractLine, `"internal_access_path":null`, `"internal_access_path":"/abc"`, 1), nil},
	{"no access_url_base", strings.Replace(contractLine, `"access_url_base":"https://console.example.com:6080/vnc_lite.html",`, ``, 1), nil},
	{"trailing white space", contractLine + " \r", nil},
	{"ipv6 host", strings.Replace(contractLine, `"127.0.0.1"`, `"fe80::1%eth0"`, 1), nil},
	{"other console type", strings.Replace(contractLine, `"novnc"`, `"spice-html5"`, 1), nil},

	{"empty", ``, errNotJSON},
	{"not JSON", `token_hash=abc`, errNotJSON},
	{"truncated", contractLine[:40], errNotJSON},
	{"two objects", contractLine + contractLine, errNotJSON},
	{"array", `[1,2]`, errWrongType},
	{"null", `null`, errTokenHash},
	{"port as string", strings.Replace(contractLine, `5900`, `"5900"`, 1), errWrongType},
	{"expires fractional", strings.Replace(contractLine, `1795000000`, `1795000000.5`, 1), errWrongType},
	{"no token_hash", strings.Replace(contractLine, `"token_hash"`, `"token_hashx"`, 1), errTokenHash},
	{"upper-case token_hash", strings.Replace(contractLine, secretTokenHash, strings.ToUpper(secretTokenHash), 1), errTokenHash},
	{"short token_hash", strings.Replace(contractLine, secretTokenHash, secretTokenHash[:63], 1), errTokenHash},
	{"long token_hash", strings.Replace(contractLine, secretTokenHash, secretTokenHash+"0", 1), errTokenHash},
	{"non-hex token_hash", strings.Replace(contractLine, secretTokenHash, "g"+secretTokenHash[1:], 1), errTokenHash},
	{"empty console_type", strings.Replace(contractLine, `"novnc"`, `""`, 1), errConsoleType},
	{"console_type with space", strings.Replace(contractLine, `"novnc"`, `"no vnc"`, 1), errConsoleType},
	{"empty host", strings.Replace(contractLine, `"127.0.0.1"`, `""`, 1), errHost},
	{"host with space", strings.Replace(contractLine, `"127.0.0.1"`, `"127.0.0.1 x"`, 1), errHost},
	{"host with newline", strings.Replace(contractLine, `"127.0.0.1"`, `"127.0.0.1\r\nX: y"`, 1), errHost},
	{"host with NUL", strings.Replace(contractLine, `"127.0.0.1"`, `"a\u0000b"`, 1), errHost},
	{"host non-ASCII", strings.Replace(contractLine, `"127.0.0.1"`, `"h\u00e9te"`, 1), errHost},
	{"host null", strings.Replace(contractLine, `"127.0.0.1"`, `null`, 1), errHost},
	{"port 0", strings.Replace(contractLine, `5900`, `0`, 1), errPort},
	{"port 65536", strings.Replace(contractLine, `5900`, `65536`, 1), errPort},
	{"port negative", strings.Replace(contractLine, `5900`, `-1`, 1), errPort},
	{"no port", strings.Replace(contractLine, `"port":5900,`, ``, 1), errPort},
	{"tls_port 0", strings.Replace(contractLine, `"port":5900`, `"port":5900,"tls_port":0`, 1), errTLSPort},
	{"tls_port 70000", strings.Replace(contractLine, `"port":5900`, `"port":5900,"tls_port":70000`, 1), errTLSPort},
	{"no instance_uuid", strings.Replace(contractLine, `"instance_uuid"`, `"instance"`, 1), errInstanceUUID},
	{"instance_uuid with tab", strings.Replace(contractLine, `"6f5b8a3c-`, `"\t6f5b8a3c-`, 1), errInstanceUUID},
	{"expires 0", strings.Replace(contractLine, `1795000000`, `0`, 1), errExpires},
	{"expires negative", strings.Replace(contractLine, `1795000000`, `-5`, 1), errExpires},
	{"no expires", strings.Replace(contractLine, `,"expires":1795000000`, ``, 1), errExpires},
}

func TestParseRecord(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			rec, h, err := ParseRecord([]byte(tc.line))
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				if rec != (Record{}) || h != (Hash{}) {
					t.Errorf("a refused line returned %+v, %x", rec, h)
				}
				return
			}
			if h.Hex() != rec.TokenHash || rec.TokenHash != secretTokenHash {
				t.Errorf("hash %s, token_hash %s, want %s", h.Hex(), rec.TokenHash, secretTokenHash)
			}
		})
	}
}

func TestParseRecordFields(t *testing.T) {
	rec, h, err := ParseRecord([]byte(strings.Replace(contractLine, `"port":5900`, `"port":5900,"tls_port":5901`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	tls := 5901
	want := Record{
		TokenHash: secretTokenHash, ConsoleType: "novnc", Host: "127.0.0.1", Port: 5900, TLSPort: &tls,
		InstanceUUID: "6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab", AccessURLBase: "https://console.example.com:6080/vnc_lite.html",
		Expires: 1795000000,
	}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("got %+v\nwant %+v", rec, want)
	}
	if h != HashToken([]byte("secret-token")) {
		t.Errorf("hash does not match HashToken(secret-token)")
	}
}

// TestParseErrorsHoldNoValues: a refused line's error never repeats any of
// its content (docs/contract.md: warnings name the line number, never content).
func TestParseErrorsHoldNoValues(t *testing.T) {
	for _, tc := range parseCases {
		if tc.err == nil {
			continue
		}
		_, _, err := ParseRecord([]byte(tc.line))
		for _, v := range []string{secretTokenHash[:16], "127.0.0.1", "6f5b8a3c", "1795000000", "5900"} {
			if strings.Contains(err.Error(), v) {
				t.Errorf("%s: error %q holds %q", tc.name, err, v)
			}
		}
	}
}

// parseErrors is every error ParseRecord may return.
var parseErrors = []error{errNotJSON, errWrongType, errTokenHash, errConsoleType, errHost, errPort, errTLSPort, errInstanceUUID, errExpires}

// FuzzParseRecord: never panics; every error is one of the fixed messages
// (so none holds content); an accepted record satisfies every rule, and
// marshalling it and parsing again gives the same record and hash.
func FuzzParseRecord(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, h, err := ParseRecord(line)
		if err != nil {
			for _, e := range parseErrors {
				if err == e {
					return
				}
			}
			t.Fatalf("unexpected error %v", err)
		}
		if h2, err := validate(&rec); err != nil || h2 != h || h.Hex() != rec.TokenHash {
			t.Fatalf("accepted record fails validation: %v", err)
		}
		again, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		rec2, h2, err := ParseRecord(again)
		if err != nil || h2 != h || !reflect.DeepEqual(rec, rec2) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, rec, rec2)
		}
	})
}
