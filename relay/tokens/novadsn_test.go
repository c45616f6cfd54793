package tokens

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dsnCases are nova.conf [database] connection values (SQLAlchemy URLs as
// oslo.db reads them) and the drivers' own forms.
var dsnCases = []struct {
	name, in string
	driver   string // "" for an error
	str      string // String(), or a substring of the error
	pass     string // the password the driver gets
}{
	{"pymysql, default port", "mysql+pymysql://nova:s3cr%3Bt%40x@db.example.net/nova?charset=utf8",
		DriverMySQL, "mysql://nova@tcp(db.example.net:3306)/nova", "s3cr;t@x"},
	{"plain mysql, port", "mysql://nova:pw@10.0.0.5:3307/nova", DriverMySQL, "mysql://nova@tcp(10.0.0.5:3307)/nova", "pw"},
	{"mysqldb, IPv6", "mysql+mysqldb://nova:pw@[fd00::5]/nova", DriverMySQL, "mysql://nova@tcp([fd00::5]:3306)/nova", "pw"},
	{"mariadb dialect", "mariadb+pymysql://nova:pw@db/nova", DriverMySQL, "mysql://nova@tcp(db:3306)/nova", "pw"},
	{"unix socket", "mysql+pymysql://nova:pw@/nova?unix_socket=/run/mysqld/mysqld.sock",
		DriverMySQL, "mysql://nova@unix(/run/mysqld/mysqld.sock)/nova", "pw"},
	{"devstack's dbcounter plugin", "mysql+pymysql://root:pw@127.0.0.1/nova_cell1?charset=utf8&plugin=dbcounter",
		DriverMySQL, "mysql://root@tcp(127.0.0.1:3306)/nova_cell1", "pw"},
	{"timeouts and TLS", "mysql+pymysql://nova:pw@db/nova?connect_timeout=3&read_timeout=2.5&ssl_ca=/etc/ca.pem&ssl_verify_cert=true",
		DriverMySQL, "mysql://nova@tcp(db:3306)/nova", "pw"},
	{"go-sql-driver's own form", "nova:pw@tcp(db:3306)/nova?timeout=2s", DriverMySQL, "mysql://nova@tcp(db:3306)/nova", "pw"},
	{"psycopg2", "postgresql+psycopg2://nova:p%2Fw@db.example.net/nova", DriverPostgres, "postgresql://nova@db.example.net:5432/nova", "p/w"},
	{"postgres scheme, plugin dropped", "postgres://nova:pw@db:5433/nova?sslmode=disable&plugin=dbcounter",
		DriverPostgres, "postgresql://nova@db:5433/nova", "pw"},
	{"libpq keywords", "host=db port=5432 user=nova password=pw dbname=nova sslmode=disable",
		DriverPostgres, "postgresql://nova@db:5432/nova", "pw"},

	{"unknown pymysql parameter", "mysql+pymysql://nova:pw@db/nova?read_default_file=/etc/my.cnf", "", `"read_default_file"`, ""},
	{"parameter name not a name", "mysql://u:0000@h/db?%3A%30%30%30%30%40=1", "", "parameter (name not shown)", ""},
	{"password run into the query", "mysql://nova:1234?x:SECRET@db/nova", "", "parameter (name not shown)", ""},
	{"parameter name too long", "mysql://nova:pw@db/nova?" + strings.Repeat("a", maxShownName+1) + "=1", "", "parameter (name not shown)", ""},
	{"bad timeout", "mysql+pymysql://nova:pw@db/nova?connect_timeout=soon", "", `"connect_timeout"`, ""},
	{"sqlite", "sqlite:///var/lib/nova/nova.sqlite", "", `"sqlite"`, ""},
	{"bad escape", "mysql+pymysql://nova:p%zzSECRET@db/nova", "", "does not parse", ""},
	{"bad postgres port", "postgresql://nova:SECRETpw@db:99999/nova", "", "does not parse", ""},
	{"nothing", "", "", "does not parse", ""},
	{"garbage", "hello", "", "does not parse", ""},
	{"slash in database", "mysql://nova:pw@db/nova/x", "", "database name", ""},
	{"no database", "mysql://x", "", "names no database", ""},
	{"no database, postgres", "postgresql://nova@db", "", "names no database", ""},
	{"no database, native", "nova:pw@tcp(db:3306)/", "", "names no database", ""},
}

func TestParseNovaDSN(t *testing.T) {
	for _, tc := range dsnCases {
		d, err := ParseNovaDSN(tc.in)
		if tc.driver == "" {
			if err == nil || !strings.Contains(err.Error(), tc.str) {
				t.Errorf("%s: err %v, want one containing %s", tc.name, err, tc.str)
			}
			if err != nil && strings.Contains(err.Error(), "SECRET") {
				t.Errorf("%s: the error shows the password: %v", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if d.Driver != tc.driver || d.String() != tc.str {
			t.Errorf("%s: %s %s, want %s %s", tc.name, d.Driver, d, tc.driver, tc.str)
		}
		if got := password(d); got != tc.pass {
			t.Errorf("%s: password %q, want %q", tc.name, got, tc.pass)
		}
	}
}

func password(d NovaDSN) string {
	if d.my != nil {
		return d.my.Passwd
	}
	return d.pg.Password
}

// TestParseNovaDSNParameters: pymysql's parameters land in the driver's
// configuration.
func TestParseNovaDSNParameters(t *testing.T) {
	d, err := ParseNovaDSN("mysql+pymysql://nova:pw@db/nova?connect_timeout=3&read_timeout=2.5&write_timeout=1" +
		"&ssl_ca=/etc/ca.pem&ssl_cert=/etc/c.pem&ssl_key=/etc/k.pem&ssl_verify_cert=false")
	if err != nil {
		t.Fatal(err)
	}
	if d.my.Timeout != 3*time.Second || d.my.ReadTimeout != 2500*time.Millisecond || d.my.WriteTimeout != time.Second {
		t.Errorf("timeouts %v %v %v", d.my.Timeout, d.my.ReadTimeout, d.my.WriteTimeout)
	}
	if want := (mysqlTLS{ca: "/etc/ca.pem", cert: "/etc/c.pem", key: "/etc/k.pem", noVerify: true}); d.tls != want {
		t.Errorf("tls %+v, want %+v", d.tls, want)
	}
}

// FuzzParseNovaDSN: no input panics, parsing is deterministic, and neither
// String nor an error ever shows the password.
func FuzzParseNovaDSN(f *testing.F) {
	for _, tc := range dsnCases {
		f.Add(tc.in)
	}
	// A password that is part of an error's fixed text ("…/nova").
	f.Add("u:/nov@tcp(h)/")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseNovaDSN(s)
		d2, err2 := ParseNovaDSN(s)
		if (err == nil) != (err2 == nil) || d.String() != d2.String() {
			t.Fatalf("not deterministic: %v / %v", err, err2)
		}
		secret := userinfoPassword(s)
		if err != nil {
			if len(secret) >= 4 && strings.Contains(quotedInput(err.Error()), secret) {
				t.Fatalf("error shows the password %q: %v", secret, err)
			}
			return
		}
		// String must not depend on the password at all: a substring
		// test would also match a password that happens to equal
		// "/"+database (":/000@/000").
		if other := withPassword(d, "\x00another"); other.String() != d.String() {
			t.Fatalf("String shows the password: %s", d)
		}
	})
}

// quotedInput returns the parts of an error message that quote its input
// (%q: the dialect, a parameter's name), joined by NULs; the fixed text
// around them is the package's own words and may contain anything a fuzzed
// password does ("…/nova").
func quotedInput(msg string) string {
	var parts []string
	for _, q := range quotedRE.FindAllString(msg, -1) {
		if u, err := strconv.Unquote(q); err == nil {
			parts = append(parts, u)
		}
	}
	return strings.Join(parts, "\x00")
}

var quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// TestQuotedInput: the fuzz target's leak check looks only at what an error
// quotes.
func TestQuotedInput(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"novadb: the connection string names no database (Nova's cell database, e.g. …/nova)", ""},
		{`novadb: unsupported database "s3cret": want mysql://`, "s3cret"},
		{`novadb: MySQL URL parameter "a\"b": invalid value`, `a"b`},
		{`x "one" y "two"`, "one\x00two"},
	} {
		if got := quotedInput(tc.msg); got != tc.want {
			t.Errorf("quotedInput(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
	if _, err := ParseNovaDSN("u:/nov@tcp(h)/"); err == nil || strings.Contains(quotedInput(err.Error()), "/nov") {
		t.Errorf("native form without a database: %v", err)
	}
}

// userinfoPassword returns what stands between "user:" and the last '@' of
// a URL-like s, unless it also appears elsewhere in s (then an error may
// quote it from there: a parameter's name, the scheme).
func userinfoPassword(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "", s
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return ""
	}
	user, pw, ok := strings.Cut(rest[:at], ":")
	// Case-folded: an error quotes the scheme lower-cased ("00AA://:00aa@");
	// and decoded: a parameter's name may be escaped ("?%30%30%30%30=1").
	elsewhere := strings.ToLower(scheme + user + rest[at:])
	if dec, err := url.QueryUnescape(elsewhere); err == nil {
		elsewhere += "\x00" + strings.ToLower(dec)
	}
	if !ok || strings.Contains(elsewhere, strings.ToLower(pw)) {
		return ""
	}
	return pw
}

// withPassword is d with its password replaced (the driver's configuration
// copied, d untouched).
func withPassword(d NovaDSN, pw string) NovaDSN {
	if d.my != nil {
		d.my = d.my.Clone()
		d.my.Passwd = pw
	} else {
		d.pg = d.pg.Copy()
		d.pg.Password = pw
	}
	return d
}
