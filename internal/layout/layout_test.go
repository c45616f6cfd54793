package layout

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// root is the repository root, from this package's directory.
const root = "../.."

// TestImportsPointDown: no package of the product or the harness imports
// one above it (tests' imports count).
func TestImportsPointDown(t *testing.T) {
	pkgs := goList(t, root)
	pkgs = append(pkgs, goList(t, filepath.Join(root, "bench"))...) // its own module
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for _, line := range Check(pkgs) {
		t.Error(line)
	}
}

// TestCheckFindsUpwardImport: the check itself fails on each kind of
// wrong arrow, and passes the right ones.
func TestCheckFindsUpwardImport(t *testing.T) {
	m := Module + "/"
	for _, tc := range []struct {
		from, to string
		bad      bool
	}{
		{"relay/tokens", "loop/policy", true},
		{"relay", "loop", true},
		{"wsframe", "relay", true},
		{"loop", "cmd/consoleproxy", true},
		{"bench", "relay", true},
		{"internal/testutil", "relay", true},
		{"newtop", "wsframe", true},
		{"loop", "relay", false},
		{"cmd/consoleproxy", "loop", false},
		{"relay/tokens", "relay", false},
		{"loop", "internal/testutil", false},
		{"bench/e2e", "bench", false},
		{"bench", "wsframe", false},
		{"relay", "golang.org/x/sys/unix", false},
	} {
		got := Check([]Package{{Path: m + tc.from, Imports: []string{imp(tc.to)}}})
		if bad := len(got) > 0; bad != tc.bad {
			t.Errorf("%s → %s: flagged %v (%q), want %v", tc.from, tc.to, bad, got, tc.bad)
		}
	}
}

func imp(p string) string {
	if strings.Contains(strings.Split(p, "/")[0], ".") {
		return p
	}
	return Module + "/" + p
}

// linuxOnly are the directories whose code is Linux-only (epoll, the patched
// gnet, SO_* and TCP_* options, /proc): each of their Go files carries
// //go:build linux, so another GOOS is told so at once.
var linuxOnly = []string{"relay", "loop", "loop/e2e", "cmd/consoleproxy"}

func TestLinuxOnlyTagged(t *testing.T) {
	for _, dir := range linuxOnly {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		for _, f := range files {
			if !hasLinuxTag(t, f) {
				t.Errorf("%s: no //go:build linux line (the package is Linux-only)", f)
			}
		}
	}
}

func hasLinuxTag(t *testing.T, path string) bool {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		switch {
		case strings.HasPrefix(line, "//go:build "):
			return strings.Contains(line, "linux")
		case strings.HasPrefix(line, "package "):
			return false
		}
	}
	return false
}

// goList lists the packages of the module in dir with their imports.
func goList(t *testing.T, dir string) []Package {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports", "./...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in %s: %v\n%s", dir, err, stderr.String())
	}
	var pkgs []Package
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath                         string
			Imports, TestImports, XTestImports []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		imports := append(append(p.Imports, p.TestImports...), p.XTestImports...)
		pkgs = append(pkgs, Package{Path: p.ImportPath, Imports: imports})
	}
	return pkgs
}
