package policy

import (
	"testing"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

func TestQueryToken(t *testing.T) {
	tests := []struct {
		query, want string
		ok          bool
	}{
		{"token=abc", "abc", true},
		{"a=1&token=abc&b=2", "abc", true},
		{"token=&token=abc", "abc", true}, // blank values are ignored, as parse_qs does
		{"token=a%2Db+c", "a-b c", true},
		{"token=abc&token=def", "abc", true},
		{"tokens=abc", "", false},
		{"xtoken=abc", "", false},
		{"token", "", false},
		{"", "", false},
		{"token=%zz", "", false},
		{"token=%4", "", false},
		{"path=%3Ftoken%3Dabc", "", false}, // noVNC's path= is the page's parameter, not the WebSocket's
	}
	for _, tc := range tests {
		got, ok := QueryToken([]byte(tc.query))
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("QueryToken(%q) = %q, %v; want %q, %v", tc.query, got, ok, tc.want, tc.ok)
		}
	}
	long := make([]byte, MaxTokenLen+1)
	for i := range long {
		long[i] = 'a'
	}
	if _, ok := QueryToken(append([]byte("token="), long...)); ok {
		t.Error("overlong token accepted")
	}
}

// RFC 6265 §4.2.1 cookie headers; a malformed pair never hides a good token.
func TestCookieToken(t *testing.T) {
	tests := []struct {
		headers []string
		want    string
		ok      bool
	}{
		{[]string{"token=abc"}, "abc", true},
		{[]string{"a=1; token=abc; b=2"}, "abc", true},
		{[]string{`token="abc"`}, "abc", true},
		{[]string{"bad cookie; token=abc"}, "abc", true},
		{[]string{"=novalue; token=abc"}, "abc", true},
		{[]string{`x="unbalanced; token=abc`}, "abc", true},
		{[]string{"a=b c; token=abc"}, "abc", true},
		{[]string{"token=a b; token=abc"}, "abc", true}, // the malformed token pair is skipped
		{[]string{"x=1", "token=abc"}, "abc", true},
		{[]string{"token="}, "", false},
		{[]string{"Token=abc"}, "", false}, // names are case-sensitive
		{[]string{"tokenx=abc"}, "", false},
		{[]string{"token=a,b"}, "", false},
		{[]string{"token=a\\b"}, "", false},
		{nil, "", false},
	}
	for _, tc := range tests {
		var hs [][]byte
		for _, h := range tc.headers {
			hs = append(hs, []byte(h))
		}
		got, ok := CookieToken(hs)
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("CookieToken(%q) = %q, %v; want %q, %v", tc.headers, got, ok, tc.want, tc.ok)
		}
	}
}

func TestTokenAllocations(t *testing.T) {
	if testutil.Race {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	q := []byte("a=1&token=0d6c1c3a-8a4b-4f5e-9d7c-3e2f1a0b9c8d")
	c := [][]byte{[]byte("sid=1; token=0d6c1c3a-8a4b-4f5e-9d7c-3e2f1a0b9c8d")}
	if n := testing.AllocsPerRun(100, func() { QueryToken(q); CookieToken(c) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func FuzzQueryToken(f *testing.F) {
	for _, s := range []string{"token=abc", "a=1&token=a%2Db", "token=%zz", "token=&token=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		tok, ok := QueryToken([]byte(q))
		if ok && (len(tok) == 0 || len(tok) > MaxTokenLen) {
			t.Fatalf("accepted %d-byte token", len(tok))
		}
	})
}

func FuzzCookieToken(f *testing.F) {
	for _, s := range []string{"token=abc", `a=1; token="abc"`, "bad; token=x", "token=a b"} {
		f.Add(s, "x=1")
	}
	f.Fuzz(func(t *testing.T, h1, h2 string) {
		tok, ok := CookieToken([][]byte{[]byte(h1), []byte(h2)})
		if !ok {
			return
		}
		for _, c := range tok {
			if !isCookieOctet(c) {
				t.Fatalf("token with byte %#x", c)
			}
		}
		// The same pair alone in a header is found again: order of headers
		// and neighbours do not change what a good pair means.
		again, ok2 := CookieToken([][]byte{[]byte("token=" + string(tok))})
		if !ok2 || string(again) != string(tok) {
			t.Fatalf("token %q not found alone", tok)
		}
	})
}
