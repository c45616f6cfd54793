package novadbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Cell is a Nova cell database on a Server.
type Cell struct {
	srv      *Server
	Name     string
	tlsPort  bool // the table has tls_port (Nova 2024.2 and later)
	userinfo *url.Userinfo
}

// CreateCell creates database name with Nova's two tables (with tls_port
// when withTLSPort, else as before Nova 2024.2) and lets the nova user read
// them, and only read: the proxy needs nothing more.
func (s *Server) CreateCell(name string, withTLSPort bool) (*Cell, error) {
	q := quoteIdent(s.Kind, name)
	var err error
	if s.Kind == MariaDB {
		err = s.Exec("", "CREATE DATABASE "+q+" CHARACTER SET utf8", "GRANT SELECT ON "+q+".* TO 'nova'@'127.0.0.1'")
	} else {
		err = s.Exec("", "CREATE DATABASE "+q)
	}
	if err == nil {
		err = s.Exec(name, schema(s.Kind, withTLSPort)...)
	}
	if err == nil && s.Kind == PostgreSQL {
		err = s.Exec(name, "GRANT SELECT ON console_auth_tokens, instances TO nova")
	}
	if err != nil {
		return nil, err
	}
	return &Cell{srv: s, Name: name, tlsPort: withTLSPort, userinfo: url.UserPassword("nova", Password)}, nil
}

// URL is the cell's SQLAlchemy URL as nova.conf's [database] connection
// holds it, for the nova user.
func (c *Cell) URL() string {
	u := url.URL{User: c.userinfo, Host: "127.0.0.1:" + strconv.Itoa(c.srv.Port), Path: "/" + c.Name}
	if c.srv.Kind == MariaDB {
		u.Scheme, u.RawQuery = "mysql+pymysql", "charset=utf8"
	} else {
		u.Scheme, u.RawQuery = "postgresql+psycopg2", "sslmode=disable"
	}
	return u.String()
}

// Token is one console authorization, the columns Nova's
// ConsoleAuthToken.authorize writes.
type Token struct {
	ConsoleType        string
	Host               string
	Port               int
	TLSPort            *int
	InternalAccessPath *string
	InstanceUUID       string
	AccessURLBase      *string
	Expires            int64 // Unix seconds: Nova writes now + [consoleauth] token_ttl
}

// AddToken inserts t under a new token made as Nova makes one (a random
// UUID; its lowercase hex SHA-256 in token_hash) and returns the token.
func (c *Cell) AddToken(t Token) (string, error) {
	token := NewUUID()
	sum := sha256.Sum256([]byte(token))
	cols := "created_at, token_hash, console_type, host, port, internal_access_path, instance_uuid, access_url_base, expires"
	args := []any{utcNow(), hex.EncodeToString(sum[:]), t.ConsoleType, t.Host, t.Port, t.InternalAccessPath,
		t.InstanceUUID, t.AccessURLBase, t.Expires}
	if c.tlsPort {
		cols += ", tls_port"
		args = append(args, t.TLSPort)
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ")
	return token, c.exec("INSERT INTO console_auth_tokens ("+cols+") VALUES ("+marks+")", args...)
}

// AddInstance inserts a live instance (deleted = 0).
func (c *Cell) AddInstance(uuid string) error {
	return c.exec("INSERT INTO instances (created_at, uuid, deleted, vm_state, host, node, cleaned) "+
		"VALUES (?, ?, 0, 'active', 'compute-1', 'compute-1', 0)", utcNow(), uuid)
}

// DeleteInstance soft-deletes an instance as Nova does (deleted = id,
// deleted_at = now), leaving its tokens behind: what Nova's own clean-up
// misses when it fails or races.
func (c *Cell) DeleteInstance(uuid string) error {
	return c.exec("UPDATE instances SET deleted = id, deleted_at = ? WHERE uuid = ? AND deleted = 0", utcNow(), uuid)
}

// exec runs one statement with ? placeholders in the cell as the superuser.
func (c *Cell) exec(query string, args ...any) error {
	if c.srv.Kind == PostgreSQL {
		query = dollarPlaceholders(query)
	}
	e, err := c.srv.admin(c.Name)
	if err != nil {
		return err
	}
	defer e.close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.exec(ctx, query, args...)
}

// dollarPlaceholders turns ?, ?, … into $1, $2, … (no ? in literals here).
func dollarPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// utcNow is Nova's timeutils.utcnow(): naive UTC, whole seconds.
func utcNow() time.Time { return time.Now().UTC().Truncate(time.Second) }

// NewUUID returns a random (version 4) UUID, Nova's token and instance form.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
