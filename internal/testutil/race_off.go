//go:build !race

package testutil

// Race reports a -race build: allocation counts are not meaningful there
// (the race detector allocates), so allocation tests skip and `make test`
// runs them once more without -race.
const Race = false
