//go:build linux

package loop

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// tokenRecord is a file-store line for token: a novnc console at
// host:port, valid for an hour.
func tokenRecord(token, host string, port int) string {
	return fmt.Sprintf(`{"token_hash":%q,"console_type":"novnc","host":%q,"port":%d,"internal_access_path":null,"instance_uuid":"i-1","expires":%d}`,
		tokens.HashToken([]byte(token)).Hex(), host, port, time.Now().Add(time.Hour).Unix())
}
