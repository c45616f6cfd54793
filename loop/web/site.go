// Package web serves static files (noVNC) on the proxy's own listener.
// The whole directory is loaded into memory at start and on reload, so the
// event loop answers from memory and never blocks on the disk; the set of
// servable paths is fixed at load time, so no request can reach outside it.
package web

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Limits on what a site may hold in memory.
const (
	MaxSiteBytes = 64 << 20 // all files together; noVNC is about 1.2 MiB
	MaxFiles     = 10000
)

// file is one servable file, its response head precomputed.
type file struct {
	head []byte // status line and headers for GET, ending in the blank line
	body []byte
}

// Site is an immutable snapshot of a directory.
type Site struct {
	files map[string]*file // keyed by the clean path without the leading '/'
	Dir   string
	Bytes int64
}

// baseCSP lets noVNC run while allowing nothing from elsewhere: its own
// scripts, styles and images (plus data: images for cursors), WebSocket
// connections back to this origin, no plugins, no framing.
const baseCSP = "default-src 'none'; script-src 'self'%s; style-src 'self'%s; img-src 'self' data:; " +
	"font-src 'self'; media-src 'self'; connect-src 'self'; manifest-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Load reads every regular file under dir (following symbolic links to
// files, as a package like Debian's novnc installs them) into memory.
func Load(dir string) (*Site, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("web: %s is not a directory", dir)
	}
	s := &Site{files: map[string]*file{}, Dir: dir}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return s.add(dir, path)
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Site) add(dir, path string) error {
	st, err := os.Stat(path) // follows a link; a dangling one is skipped
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	if len(s.files) >= MaxFiles || s.Bytes+st.Size() > MaxSiteBytes {
		return fmt.Errorf("web: %s holds more than %d files or %d bytes", dir, MaxFiles, MaxSiteBytes)
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return err
	}
	rel = filepath.ToSlash(rel)
	s.files[rel] = &file{head: head(rel, body), body: body}
	s.Bytes += int64(len(body))
	return nil
}

// head builds the response head of a file.
func head(name string, body []byte) []byte {
	ctype := contentType(name)
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\n")
	fmt.Fprintf(&b, "Content-Type: %s\r\nContent-Length: %d\r\n", ctype, len(body))
	b.WriteString("X-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\nReferrer-Policy: no-referrer\r\n")
	if strings.HasPrefix(ctype, "text/html") {
		fmt.Fprintf(&b, "Content-Security-Policy: %s\r\n", csp(body))
	}
	b.WriteString("Connection: close\r\n\r\n")
	return []byte(b.String())
}

var extraTypes = map[string]string{
	".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
	".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
	".json": "application/json", ".png": "image/png", ".ico": "image/x-icon", ".oga": "audio/ogg",
	".mp3": "audio/mpeg", ".woff": "font/woff", ".woff2": "font/woff2", ".txt": "text/plain; charset=utf-8",
}

func contentType(name string) string {
	ext := strings.ToLower(filepath.Ext(name))
	if t, ok := extraTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

var (
	inlineScript = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
	inlineStyle  = regexp.MustCompile(`(?is)<style\b[^>]*>(.*?)</style>`)
	srcAttr      = regexp.MustCompile(`(?i)\bsrc\s*=`)
)

// csp allows exactly the inline scripts and styles an HTML file carries, by
// their SHA-256, and nothing else inline.
func csp(body []byte) string {
	var scripts, styles strings.Builder
	for _, m := range inlineScript.FindAllSubmatch(body, -1) {
		if !srcAttr.Match(m[1]) {
			fmt.Fprintf(&scripts, " 'sha256-%s'", hash(m[2]))
		}
	}
	for _, m := range inlineStyle.FindAllSubmatch(body, -1) {
		fmt.Fprintf(&styles, " 'sha256-%s'", hash(m[1]))
	}
	return fmt.Sprintf(baseCSP, scripts.String(), styles.String())
}

func hash(b []byte) string {
	h := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(h[:])
}

// ErrNotFound, ErrBadPath and ErrMethod are the refusals; callers answer
// 404, 400 and 405.
var (
	ErrNotFound = errors.New("not found")
	ErrBadPath  = errors.New("bad path")
	ErrMethod   = errors.New("method not allowed")
)
