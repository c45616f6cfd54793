//go:build linux

package loop

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// discardLog is the logger of the package's servers under test.
var discardLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// fileStore is a file token store holding lines (token records), closed
// at the test's end.
func fileStore(t *testing.T, lines ...string) *tokens.FileStore {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.jsonl")
	text := ""
	if len(lines) > 0 {
		text = strings.Join(lines, "\n") + "\n"
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := tokens.OpenFile(tokens.FileConfig{Path: path, Logger: discardLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
