package testutil

import (
	"errors"
	"testing"
	"time"
)

// WaitBound bounds every wait in WaitFor and CheckFor: long enough for a
// loaded CI machine, short enough that a hung test fails on its own. It is a
// bound on waiting, never a timing assertion.
const WaitBound = 10 * time.Second

// pollInterval is how often a condition is checked again.
const pollInterval = 5 * time.Millisecond

// WaitFor polls cond until it holds; the test fails if it does not within
// WaitBound (nats' checkFor). what names the condition in the failure.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	CheckFor(t, what, func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	})
}

// CheckFor is WaitFor for a condition that says why it does not hold yet:
// the last reason is in the failure.
func CheckFor(t testing.TB, what string, cond func() error) {
	t.Helper()
	if err := CheckWithin(WaitBound, cond); err != nil {
		t.Fatalf("timed out waiting for %s: %v", what, err)
	}
}

// Eventually polls cond until it holds or d passes and reports whether it
// held: for a wait whose end is not a failure (collecting a log before
// failing, checking that something stays absent).
func Eventually(d time.Duration, cond func() bool) bool {
	return CheckWithin(d, func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	}) == nil
}

// CheckWithin polls cond until it returns nil or d passes, and returns its
// last error (nil once it held).
func CheckWithin(d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pollInterval) // the poll interval, not a synchronisation
	}
}
