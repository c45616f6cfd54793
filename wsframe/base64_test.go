package wsframe

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// The test vectors of RFC 4648 §10.
var rfc4648Vectors = []struct{ plain, encoded string }{
	{"", ""},
	{"f", "Zg=="},
	{"fo", "Zm8="},
	{"foo", "Zm9v"},
	{"foob", "Zm9vYg=="},
	{"fooba", "Zm9vYmE="},
	{"foobar", "Zm9vYmFy"},
}

// decodeSplit decodes one message fed in pieces cut at cuts (clamped, in
// order) and renders the output and error.
func decodeSplit(src []byte, cuts ...int) string {
	var d Base64Decoder
	var out []byte
	var err error
	prev := 0
	for _, c := range append(cuts, len(src)) {
		c = max(prev, min(c, len(src)))
		out, err = d.Decode(out, src[prev:c])
		prev = c
	}
	if endErr := d.End(); err == nil {
		err = endErr
	}
	return fmt.Sprintf("%q err=%v", out, err)
}

func TestBase64RFC4648Vectors(t *testing.T) {
	for _, v := range rfc4648Vectors {
		if got := string(AppendBase64([]byte("x"), []byte(v.plain))); got != "x"+v.encoded {
			t.Errorf("encode %q = %q", v.plain, got)
		}
		if n := Base64EncodedLen(len(v.plain)); n != len(v.encoded) {
			t.Errorf("EncodedLen(%d) = %d", len(v.plain), n)
		}
		want := fmt.Sprintf("%q err=<nil>", v.plain)
		for cut := range len(v.encoded) + 1 {
			if got := decodeSplit([]byte(v.encoded), cut); got != want {
				t.Errorf("decode %q cut at %d: %s", v.encoded, cut, got)
			}
		}
		if got := decodeSplit([]byte(v.encoded), everyByte([]byte(v.encoded))...); got != want {
			t.Errorf("decode %q byte by byte: %s", v.encoded, got)
		}
	}
}

// Strict decoding: the output is every whole quantum before the bad one.
func TestBase64DecodeErrors(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{"Zg", ""},            // ends inside a quantum
		{"Zm9vZg=", "foo"},    // padding incomplete
		{"Zg==Zg==", "f"},     // padding only at the end
		{"Zm8=Zm9v", "fo"},    // data after padding
		{"Zm9v\nYmFy", "foo"}, // line breaks are not skipped
		{"Zm9vYmFy\r\n", "foobar"},
		{" Zm9v", ""}, // nor spaces
		{"Zm9v YmFy", "foo"},
		{"Zh==", ""}, // trailing bits must be zero
		{"Zm9=", ""},
		{"====", ""},
		{"Z===", ""},
		{"Zm9v!mFy", "foo"}, // outside the alphabet
		{"Zm9v-_Fy", "foo"}, // URL alphabet
		{"Zm9vYmFyZg==Zm9v", "foobarf"},
	} {
		want := fmt.Sprintf("%q err=invalid base64", tc.out)
		for cut := range len(tc.in) + 1 {
			if got := decodeSplit([]byte(tc.in), cut, cut+1); got != want {
				t.Errorf("%q cut at %d: %s, want %s", tc.in, cut, got, want)
			}
		}
	}
}

// An error sticks until End, and End starts the next message afresh.
func TestBase64DecoderStickyAndEnd(t *testing.T) {
	var d Base64Decoder
	if _, err := d.Decode(nil, []byte("Zg==")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decode(nil, []byte("Zg==")); err != ErrInvalidBase64 {
		t.Fatalf("second quantum after padding: %v", err)
	}
	if out, err := d.Decode(nil, []byte("Zm9v")); err != ErrInvalidBase64 || len(out) != 0 {
		t.Fatalf("not sticky: %q %v", out, err)
	}
	if err := d.End(); err != ErrInvalidBase64 {
		t.Fatalf("End %v", err)
	}
	if out, err := d.Decode(nil, []byte("Zm9vYg==")); err != nil || string(out) != "foob" || d.End() != nil {
		t.Fatalf("after End: %q %v", out, err)
	}
	if ErrInvalidBase64.Code != 1007 {
		t.Errorf("close code %d", ErrInvalidBase64.Code)
	}
}

func TestBase64NoAllocations(t *testing.T) {
	if testutil.Race {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	plain := bytes.Repeat([]byte("noVNC frame "), 100)
	enc := AppendBase64(nil, plain)
	dst := make([]byte, 0, 2*len(enc))
	var d Base64Decoder
	for name, f := range map[string]func(){
		"encode": func() { dst = AppendBase64(dst[:0], plain) },
		"decode": func() {
			dst, _ = d.Decode(dst[:0], enc[:7])
			dst, _ = d.Decode(dst, enc[7:])
			if d.End() != nil {
				panic("bad")
			}
		},
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per run", name, n)
		}
	}
}

// FuzzBase64Decoder: feeding a message in pieces gives the same output and
// error as feeding it whole, and validity agrees with encoding/base64's strict
// decoder (which skips line breaks; we refuse them).
func FuzzBase64Decoder(f *testing.F) {
	for _, v := range rfc4648Vectors {
		f.Add([]byte(v.encoded), []byte{1, 2})
	}
	for _, s := range []string{"Zg==Zg==", "Zm9v\nYmFy", "Zh==", "Zm9vZg=", "Zm9vYmFyZg==Zm9v", "===="} {
		f.Add([]byte(s), []byte{3})
	}
	f.Fuzz(func(t *testing.T, src, splits []byte) {
		var cuts []int
		at := 0
		for _, s := range splits {
			at += int(s % 16)
			cuts = append(cuts, at)
		}
		whole := decodeSplit(src)
		if split := decodeSplit(src, cuts...); split != whole {
			t.Fatalf("split %v: %s, whole: %s", cuts, split, whole)
		}
		ref, refErr := base64.StdEncoding.Strict().DecodeString(string(src))
		if bytes.ContainsAny(src, "\r\n") {
			refErr = ErrInvalidBase64
		}
		if refErr == nil {
			if want := fmt.Sprintf("%q err=<nil>", ref); whole != want {
				t.Fatalf("got %s, want %s", whole, want)
			}
		} else if !bytes.HasSuffix([]byte(whole), []byte("err=invalid base64")) {
			t.Fatalf("accepted %q (encoding/base64: %v): %s", src, refErr, whole)
		}
	})
}
