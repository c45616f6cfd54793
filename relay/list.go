//go:build linux

package relay

import (
	"iter"
	"strings"
)

// splitSeq yields the non-empty, space-trimmed entries of a comma-separated list.
func splitSeq(s string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for f := range strings.SplitSeq(s, ",") {
			if f = strings.TrimSpace(f); f != "" && !yield(f) {
				return
			}
		}
	}
}
