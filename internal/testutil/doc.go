// Package testutil holds the helpers tests share, one copy of each: the
// race-build flag, free loopback ports, polling a condition with a bound
// (never a sleep to synchronise), descriptor counts, socket queue depths, a
// compute host that never answers, and skipping a test whose external
// server is not installed. Its sub-packages start real servers and make
// certificates:
//
//	pki         a CA and leaf certificates as PEM files (crypto/x509)
//	proc        a server process run for a test, stopped by its PID
//	redistest   a real redis-server on a free loopback port
//	novadbtest  a real MariaDB or PostgreSQL holding Nova's tables
//
// Nothing in the product imports these packages.
package testutil
