// Package novaconf reads Nova's configuration files (nova.conf) the way
// oslo.config does, and extracts the options a console proxy needs. It
// never reads flags or the environment; cmd/consoleproxy decides what wins.
package novaconf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Value is one assignment from a file: its text after quote stripping and
// continuation joining, before $-substitution; and where it was written.
type Value struct {
	Text string
	File string
	Line int
}

// Where returns "file:line", for error messages.
func (v Value) Where() string { return fmt.Sprintf("%s:%d", v.File, v.Line) }

// File is one parsed file: normalised group → option → its assignments in
// order (oslo keeps every one; a single-valued option takes the last).
type File struct {
	Name   string
	groups map[string]map[string][]Value
}

// ParseError is a malformed file: its name, the line, what is wrong. It
// never holds the line's text (a nova.conf holds passwords).
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// maxLine bounds one physical line.
const maxLine = 1 << 20

// Parse reads one file from r as oslo.config's iniparser does:
//
//   - "[group]" starts a group; names are case-insensitive except DEFAULT
//     (oslo's _normalize_group_name);
//   - "key = value" or "key: value" (whichever of '=' and ':' comes first);
//     key and value are trimmed, and one pair of matching quotes around the
//     value is removed;
//   - a line starting with a space or a tab continues the previous value
//     (joined with "\n"); a blank line ends it;
//   - a line starting with '#' or ';' is a comment (no inline comments:
//     "a = b # c" is "b # c");
//   - line ends are "\n", "\r\n" or "\r" (Python's universal newlines).
//
// An assignment before any group, a continuation with nothing to continue,
// "[group" without ']', "[]", a line without '=' or ':' and an empty key are
// errors naming name and the line.
func Parse(name string, r io.Reader) (*File, error) {
	p := parser{f: &File{Name: name, groups: map[string]map[string][]Value{}}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	sc.Split(splitLines)
	for sc.Scan() {
		p.line++
		if err := p.feed(sc.Bytes()); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		msg := "read error"
		if errors.Is(err, bufio.ErrTooLong) {
			msg = "line longer than 1 MiB"
		}
		return nil, &ParseError{File: name, Line: p.line + 1, Msg: msg}
	}
	if err := p.flush(); err != nil {
		return nil, err
	}
	return p.f, nil
}

// parser is Parse's state between lines.
type parser struct {
	f        *File
	line     int
	group    string // normalised; "" before the first group
	hasGroup bool
	key      string // the assignment being read; "" for none
	keyLine  int
	value    []string
}

// feed handles one physical line (without its line end).
func (p *parser) feed(raw []byte) error {
	if !utf8.Valid(raw) {
		return p.err(p.line, "not valid UTF-8")
	}
	line := strings.TrimRightFunc(string(raw), isSpace)
	switch {
	case line == "":
		return p.flush() // a blank line ends a multi-line value
	case line[0] == ' ' || line[0] == '\t':
		if p.key == "" {
			return p.err(p.line, "unexpected continuation line")
		}
		p.value = append(p.value, strings.TrimLeftFunc(line, isSpace))
		return nil
	}
	if err := p.flush(); err != nil {
		return err
	}
	switch line[0] {
	case '[':
		return p.section(line)
	case '#', ';':
		return nil
	}
	return p.assignment(line)
}

func (p *parser) section(line string) error {
	if !strings.HasSuffix(line, "]") {
		return p.err(p.line, "invalid section (must end with ])")
	}
	if len(line) <= 2 {
		return p.err(p.line, "empty section name")
	}
	p.group, p.hasGroup = NormalizeGroup(line[1:len(line)-1]), true
	return nil
}

// assignment starts "key = value" or "key: value".
func (p *parser) assignment(line string) error {
	i := strings.IndexAny(line, ":=")
	if i < 0 {
		return p.err(p.line, "no ':' or '=' found in assignment")
	}
	key := strings.TrimFunc(line[:i], isSpace)
	value := strings.TrimFunc(line[i+1:], isSpace)
	if n := len(value); n >= 2 && (value[0] == '"' || value[0] == '\'') && value[n-1] == value[0] {
		value = value[1 : n-1]
	} else if value == `"` || value == `'` {
		value = "" // Python's value[1:-1] of a one-character string
	}
	if key == "" {
		return p.err(p.line, "key cannot be empty")
	}
	p.key, p.keyLine, p.value = key, p.line, []string{value}
	return nil
}

// flush stores the assignment being read, if any.
func (p *parser) flush() error {
	if p.key == "" {
		return nil
	}
	if !p.hasGroup {
		return p.err(p.keyLine, "section must be started before assignment")
	}
	g := p.f.groups[p.group]
	if g == nil {
		g = map[string][]Value{}
		p.f.groups[p.group] = g
	}
	g[p.key] = append(g[p.key], Value{Text: strings.Join(p.value, "\n"), File: p.f.Name, Line: p.keyLine})
	p.key, p.value = "", nil
	return nil
}

func (p *parser) err(line int, msg string) error {
	return &ParseError{File: p.f.Name, Line: line, Msg: msg}
}

// NormalizeGroup is oslo's _normalize_group_name: DEFAULT as is, any other
// group name lower-cased.
func NormalizeGroup(g string) string {
	if g == "DEFAULT" {
		return g
	}
	return strings.ToLower(g)
}

// isSpace is Python's str.isspace for one rune, which also counts the
// ASCII separators 0x1c to 0x1f.
func isSpace(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f }

// splitLines is a bufio.SplitFunc for Python's universal newlines: "\n",
// "\r\n" and a lone "\r" end a line. A "\r" at the end of the data asks for
// more, since a "\n" may follow.
func splitLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	i := bytes.IndexAny(data, "\r\n")
	switch {
	case i < 0 && atEOF && len(data) > 0:
		return len(data), data, nil
	case i < 0:
		return 0, nil, nil
	case data[i] == '\n':
		return i + 1, data[:i], nil
	case i+1 < len(data):
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
		return i + 1, data[:i], nil
	case atEOF:
		return i + 1, data[:i], nil
	}
	return 0, nil, nil // a '\r' last: wait for what follows
}
