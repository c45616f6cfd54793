package tokens

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// lineCases are parseLines' table: docs/contract.md "The token file" (JSON Lines,
// a bad line skipped by number) plus the habits of text files.
var lineCases = []struct {
	name  string
	in    string
	max   int
	toks  []string // tokens whose records are held
	bad   []int    // lines skipped
	dups  []dupLine
	hosts []string // Host of each token's record, when checked
}{
	{name: "empty", in: ""},
	{name: "one line, no newline", in: line("a", "h1", 9), toks: []string{"a"}},
	{name: "two lines", in: line("a", "h1", 9) + "\n" + line("b", "h2", 9) + "\n", toks: []string{"a", "b"}},
	{name: "CRLF", in: line("a", "h1", 9) + "\r\n" + line("b", "h2", 9) + "\r\n", toks: []string{"a", "b"}},
	{name: "BOM", in: "\xef\xbb\xbf" + line("a", "h1", 9) + "\n", toks: []string{"a"}},
	{name: "blank and comment lines", in: "\n  \n# a comment\n\t# indented\n" + line("a", "h1", 9) + "\n\n", toks: []string{"a"}},
	{name: "bad lines skipped", in: "garbage\n" + line("a", "h1", 9) + "\n{}\n" + line("b", "h2", 0) + "\n", toks: []string{"a"}, bad: []int{1, 3, 4}},
	{name: "duplicate: later wins", in: line("a", "h1", 9) + "\n" + line("b", "h2", 9) + "\n" + line("a", "h3", 9) + "\n",
		toks: []string{"a", "b"}, dups: []dupLine{{1, 3}}, hosts: []string{"h3", "h2"}},
	{name: "long line skipped, next kept", max: 300, in: line("a", strings.Repeat("h", 400), 9) + "\n" + line("b", "h2", 9),
		toks: []string{"b"}, bad: []int{1}},
	{name: "long last line", max: 300, in: line("b", "h2", 9) + "\n" + strings.Repeat("x", 1000), toks: []string{"b"}, bad: []int{2}},
	{name: "line at the limit", max: len(line("a", "h1", 9)), in: line("a", "h1", 9) + "\r\n", toks: []string{"a"}},
	{name: "line one over the limit", max: len(line("a", "h1", 9)) - 1, in: line("a", "h1", 9) + "\r\n", bad: []int{1}},
}

func TestParseLines(t *testing.T) {
	for _, tc := range lineCases {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = 64 << 10
			}
			p, err := parseLines(strings.NewReader(tc.in), max)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.recs) != len(tc.toks) {
				t.Errorf("%d records, want %d", len(p.recs), len(tc.toks))
			}
			for i, tok := range tc.toks {
				rec, ok := p.recs[HashToken([]byte(tok))]
				if !ok {
					t.Errorf("token %q missing", tok)
				}
				if tc.hosts != nil && rec.Host != tc.hosts[i] {
					t.Errorf("token %q: host %q, want %q", tok, rec.Host, tc.hosts[i])
				}
			}
			var bad []int
			for _, b := range p.bad {
				bad = append(bad, b.line)
			}
			if !reflect.DeepEqual(bad, tc.bad) || !reflect.DeepEqual(p.dups, tc.dups) {
				t.Errorf("bad %v dups %v, want %v %v", bad, p.dups, tc.bad, tc.dups)
			}
		})
	}
}

func TestParseLinesReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader(line("a", "h", 9)+"\n"), iotest.ErrReader(boom))
	if _, err := parseLines(r, 1024); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

// FuzzParseLines feeds a file whole, split in two at an arbitrary point, and
// one byte at a time: the records, skipped lines and duplicates must be the
// same every way.
func FuzzParseLines(f *testing.F) {
	for _, tc := range lineCases {
		f.Add([]byte(tc.in), uint16(len(tc.in)/2), uint16(tc.max))
	}
	f.Fuzz(func(t *testing.T, in []byte, split, max uint16) {
		maxLine := int(max)%4096 + 1
		whole, err := parseLines(bytes.NewReader(in), maxLine)
		if err != nil {
			t.Fatal(err)
		}
		k := int(split) % (len(in) + 1)
		halves, err := parseLines(io.MultiReader(bytes.NewReader(in[:k]), bytes.NewReader(in[k:])), maxLine)
		if err != nil {
			t.Fatal(err)
		}
		bytewise, err := parseLines(iotest.OneByteReader(bytes.NewReader(in)), maxLine)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(whole, halves) || !reflect.DeepEqual(whole, bytewise) {
			t.Fatalf("split at %d changes the result:\n%+v\n%+v\n%+v", k, whole, halves, bytewise)
		}
		lines := bytes.Count(in, []byte("\n")) + 1
		for _, b := range whole.bad {
			if b.line < 1 || b.line > lines {
				t.Fatalf("bad line %d of %d", b.line, lines)
			}
		}
		if len(whole.recs)+len(whole.bad) > lines {
			t.Fatalf("%d records and %d bad lines from %d lines", len(whole.recs), len(whole.bad), lines)
		}
	})
}
