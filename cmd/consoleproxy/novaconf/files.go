package novaconf

import (
	"fmt"
	"os"
	"strings"
)

// Files are nova.conf files in the order given; a later file wins, as with
// oslo.config's repeated --config-file.
type Files struct {
	files []*File
}

// Load reads and parses paths in order.
func Load(paths ...string) (*Files, error) {
	fs := &Files{}
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("nova config: %w", err)
		}
		parsed, err := Parse(path, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("nova config: %w", err)
		}
		fs.files = append(fs.files, parsed)
	}
	return fs, nil
}

// NewFiles returns files already parsed, earliest first.
func NewFiles(files ...*File) *Files { return &Files{files: files} }

// Name is one spelling of an option: its group and its name.
type Name struct{ Group, Option string }

// Lookup returns the raw value (before $-substitution) of the first of names
// found in the newest file that has any of them, as oslo's _get_file_value
// does with an option's current name followed by its deprecated ones;
// within a file, the last assignment wins.
func (fs *Files) Lookup(names ...Name) (Value, bool) {
	v, _, ok := fs.lookup(names...)
	return v, ok
}

// lookup is Lookup, also returning which of names was found.
func (fs *Files) lookup(names ...Name) (Value, Name, bool) {
	for i := len(fs.files) - 1; i >= 0; i-- {
		for _, n := range names {
			if vals := fs.files[i].groups[NormalizeGroup(n.Group)][n.Option]; len(vals) > 0 {
				return vals[len(vals)-1], n, true
			}
		}
	}
	return Value{}, Name{}, false
}

// maxDepth bounds $-references to references.
const maxDepth = 16

// Get returns the value of the first of names the files set, with oslo's
// $-substitution applied: "$$" is "$", "$name" and "${name}" are option name
// of the group the value was found in or else of DEFAULT, "${group.name}"
// is name of group; a referenced value is substituted in its own group.
// A reference to an option the files do not set is an error (consoleproxy
// does not know Nova's defaults), as is a loop. An invalid placeholder ("$"
// then no name) stays as written, like Python's safe_substitute.
func (fs *Files) Get(names ...Name) (Value, bool, error) {
	v, found, ok := fs.lookup(names...)
	if !ok {
		return v, false, nil
	}
	text, err := fs.substitute(v.Text, found.Group, 0)
	if err != nil {
		return v, true, fmt.Errorf("%s: [%s] %s: %w", v.Where(), names[0].Group, names[0].Option, err)
	}
	v.Text = text
	return v, true, nil
}

func (fs *Files) substitute(s, group string, depth int) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	if depth >= maxDepth {
		return "", fmt.Errorf("$-references nest deeper than %d (a loop?)", maxDepth)
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		name, n := placeholder(s[i+1:])
		switch {
		case n == 0: // invalid: kept
			b.WriteByte('$')
		case name == "$":
			b.WriteByte('$')
		default:
			val, err := fs.reference(name, group, depth)
			if err != nil {
				return "", err
			}
			b.WriteString(val)
		}
		s = s[i+1+n:]
	}
}

// placeholder reads what follows a '$': "$" (escaped), a name, or a braced
// name; n is how many bytes it took, 0 for an invalid placeholder.
func placeholder(s string) (name string, n int) {
	switch {
	case strings.HasPrefix(s, "$"):
		return "$", 1
	case strings.HasPrefix(s, "{"):
		end := strings.IndexByte(s, '}')
		if end > 1 && identLen(s[1:end]) == end-1 {
			return s[1:end], end + 1
		}
		return "", 0
	}
	l := identLen(s)
	return s[:l], l
}

// identLen is the length of the identifier at the start of s: Python
// Template's idpattern as oslo widens it, [_a-z][._a-z0-9]*, any case.
func identLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20 // ASCII lower case; '.' and digits stay apart below
		letter := c >= 'a' && c <= 'z' || s[i] == '_'
		if !(letter || i > 0 && (s[i] >= '0' && s[i] <= '9' || s[i] == '.')) {
			return i
		}
	}
	return len(s)
}

// reference resolves one $name.
func (fs *Files) reference(name, group string, depth int) (string, error) {
	names := []Name{{group, name}, {"DEFAULT", name}}
	if g, opt, ok := strings.Cut(name, "."); ok {
		names = []Name{{g, opt}}
	}
	v, found, ok := fs.lookup(names...)
	if !ok {
		return "", fmt.Errorf("refers to $%s, which these files do not set (consoleproxy does not know Nova's defaults)", name)
	}
	return fs.substitute(v.Text, found.Group, depth+1)
}
