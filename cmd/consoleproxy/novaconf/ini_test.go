package novaconf

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// parseCases follow oslo.config's iniparser and its tests
// (oslo_config/tests/test_iniparser.py); want is "group/key=text@line" per
// assignment, sorted; err a substring of the error with its line.
var parseCases = []struct {
	name, in string
	want     []string
	err      string
}{
	{"blank", "", nil, ""},
	{"equal", "[g]\nfoo = bar", []string{"g/foo=bar@2"}, ""},
	{"colon", "[g]\nfoo: bar", []string{"g/foo=bar@2"}, ""},
	{"a missing '=' splits at a ':'", "[g]\nconnection mysql://x", []string{"g/connection mysql=//x@2"}, ""},
	{"first of = and : splits", "[g]\nurl = http://x:1/\nk: a=b", []string{"g/k=a=b@3", "g/url=http://x:1/@2"}, ""},
	{"multiline", "[g]\nfoo = bar0\n  bar1\n\tbar2", []string{"g/foo=bar0\nbar1\nbar2@2"}, ""},
	{"blank line ends a value", "[g]\nfoo = bar0\n\n  bar1", nil, "f:4: unexpected continuation line"},
	{"continuation after a comment", "[g]\nfoo = a\n# c\n  b", nil, "f:4: unexpected continuation line"},
	{"continuation first", "   baz", nil, "f:1: unexpected continuation line"},
	{"comment lines", "# x\n; y\n[g]\n#z = 1\nk = v # not a comment", []string{"g/k=v # not a comment@5"}, ""},
	{"empty value", "[g]\nfoo = ", []string{"g/foo=@2"}, ""},
	{"single quotes kept inside", "[g]\nfoo = ' bar '", []string{"g/foo= bar @2"}, ""},
	{"double quotes", "[g]\nfoo = \" bar \"", []string{"g/foo= bar @2"}, ""},
	{"unmatched quotes stay", "[g]\nfoo = 'bar\"", []string{"g/foo='bar\"@2"}, ""},
	{"a lone quote", "[g]\nfoo = \"", []string{"g/foo=@2"}, ""},
	{"repeated key keeps all", "[g]\nk = 1\nk = 2", []string{"g/k=1@2", "g/k=2@3"}, ""},
	{"group names lower-cased", "[VNC]\na = 1\n[vnc]\nb = 2", []string{"vnc/a=1@2", "vnc/b=2@4"}, ""},
	{"DEFAULT exact", "[DEFAULT]\na = 1\n[Default]\nb = 2", []string{"DEFAULT/a=1@2", "default/b=2@4"}, ""},
	{"CRLF and CR", "[g]\r\na = 1\r\rb = 2\r", []string{"g/a=1@2", "g/b=2@4"}, ""},
	{"trailing spaces", "[g]   \na = 1  \t", []string{"g/a=1@2"}, ""},
	{"spaces around key", "[g]\n  \n k = 1", nil, "f:3: unexpected continuation line"},
	{"invalid assignment", "[g]\nfoo - bar", nil, "f:2: no ':' or '=' found"},
	{"empty key", "[g]\n: bar", nil, "f:2: key cannot be empty"},
	{"unterminated section", "[section", nil, "f:1: invalid section"},
	{"empty section", "[]", nil, "f:1: empty section name"},
	{"no section", "foo = bar", nil, "f:1: section must be started"},
	{"not UTF-8", "[g]\nk = \xff", nil, "f:2: not valid UTF-8"},
}

// dump lists f's assignments as "group/key=text@line", sorted.
func dump(f *File) []string {
	var out []string
	for g, keys := range f.groups {
		for k, vals := range keys {
			for _, v := range vals {
				out = append(out, fmt.Sprintf("%s/%s=%s@%d", g, k, v.Text, v.Line))
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		f, err := Parse("f", strings.NewReader(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := dump(f); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestParseErrorHidesLine: a malformed line may hold a password; the error
// names the file and line only.
func TestParseErrorHidesLine(t *testing.T) {
	_, err := Parse("nova.conf", strings.NewReader("[database]\nNEVERSHOWN\n"))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 2 || strings.Contains(err.Error(), "NEVERSHOWN") {
		t.Fatalf("%v", err)
	}
}

func TestParseLongLine(t *testing.T) {
	_, err := Parse("f", strings.NewReader("[g]\nk = "+strings.Repeat("x", maxLine+1)))
	if err == nil || !strings.Contains(err.Error(), "f:2: line longer") {
		t.Fatalf("%v", err)
	}
}

// chunks is a reader that returns data cut at the given offsets.
type chunks struct {
	data []byte
	cuts []int
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	for len(c.cuts) > 0 && c.cuts[0] <= 0 {
		c.cuts = c.cuts[1:]
	}
	if len(c.cuts) > 0 && c.cuts[0] < n {
		n = c.cuts[0]
	}
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	for i := range c.cuts {
		c.cuts[i] -= n
	}
	return n, nil
}

// outcome is Parse's result as a comparable string.
func outcome(f *File, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.Join(dump(f), "\x00")
}

// FuzzParse: the same file read whole and read in pieces cut anywhere (a
// "\r\n" split included) parses the same; nothing panics; errors never
// show a line's text.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.in), uint16(3), uint16(7))
	}
	f.Add([]byte("[g]\r\na = 1\r\n"), uint16(4), uint16(5))
	f.Fuzz(func(t *testing.T, data []byte, a, b uint16) {
		whole := outcome(Parse("f", strings.NewReader(string(data))))
		x, y := int(a)%(len(data)+1), int(b)%(len(data)+1)
		cut := outcome(Parse("f", &chunks{data: data, cuts: []int{min(x, y), max(x, y)}}))
		if whole != cut {
			t.Fatalf("whole %q, in pieces %q", whole, cut)
		}
		if strings.HasPrefix(whole, "error: ") {
			if msg := strings.TrimPrefix(whole, "error: "); strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error shows input: %q", msg)
			}
		}
	})
}
