package admin

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.secret")
	s1, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := hex.DecodeString(string(s1)); err != nil || len(raw) != 32 {
		t.Fatalf("secret %d chars: %v", len(s1), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	s2, err := LoadOrCreateSecret(path)
	if err != nil || string(s2) != string(s1) {
		t.Fatalf("second load: %v, same %v", err, string(s2) == string(s1))
	}
}

func TestSecretExisting(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		want    string // "" means an error containing errPart
		errPart string
	}{
		{"trimmed", "  a-long-enough-secret-value\n", 0o600, "a-long-enough-secret-value", ""},
		{"first line", "a-long-enough-secret-value \r\n# rotated 2026-12-01\nold-secret-value-xxxxx\n", 0o600, "a-long-enough-secret-value", ""},
		{"owner read-only", "a-long-enough-secret-value", 0o400, "a-long-enough-secret-value", ""},
		{"group readable", "a-long-enough-secret-value", 0o640, "", "chmod 600"},
		{"world readable", "a-long-enough-secret-value", 0o644, "", "chmod 600"},
		{"group writable", "a-long-enough-secret-value", 0o620, "", "chmod 600"},
		{"too short", "short\n", 0o600, "", "shorter than"},
		{"empty", "", 0o600, "", "shorter than"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		got, err := LoadOrCreateSecret(path)
		switch {
		case tc.want != "" && (err != nil || string(got) != tc.want):
			t.Errorf("%s: %q, %v", tc.name, got, err)
		case tc.want == "" && (err == nil || !strings.Contains(err.Error(), tc.errPart)):
			t.Errorf("%s: err %v, want one with %q", tc.name, err, tc.errPart)
		case err != nil && tc.content != "" && strings.Contains(err.Error(), tc.content):
			t.Errorf("%s: the error holds the secret", tc.name)
		}
	}
}

func TestSecretNotRegular(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSecret(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	if _, err := LoadOrCreateSecret(filepath.Join(dir, "missing", "admin.secret")); err == nil {
		t.Error("a secret in a missing directory was created")
	}
}
