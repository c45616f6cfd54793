// Package layout holds the repository's own rules about its layout, checked
// by its tests in `make check`: import arrows point down the layers (cmd →
// loop → relay → wsframe; never relay → loop), the load harness (bench)
// uses only wsframe of the product, test helpers (internal) import nothing
// of the product, and the Linux-only packages say so with a build tag.
package layout

import (
	"fmt"
	"strings"
)

// Module is the product's module path.
const Module = "github.com/consoleproxy/consoleproxy"

// Layers, lowest first. A package may import its own layer or one below.
const (
	LayerWsframe = iota // the codec: pure functions
	LayerRelay          // compute hosts and token stores
	LayerLoop           // client sockets and sessions
	LayerCmd            // flags and wiring
)

// Kinds of package outside the product's layers.
const (
	kindOutside = "outside" // not ours (the standard library, a dependency)
	kindLayer   = "layer"
	kindBench   = "bench"    // the load harness, its own module
	kindHelper  = "internal" // internal/: test helpers and vendored code
	kindUnknown = "unknown"  // ours, but in no known place: a new top-level directory
)

// classify places an import path.
func classify(path string) (kind string, layer int) {
	if path != Module && !strings.HasPrefix(path, Module+"/") {
		return kindOutside, 0
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(path, Module), "/")
	top, _, _ := strings.Cut(rel, "/")
	switch top {
	case "wsframe":
		return kindLayer, LayerWsframe
	case "relay":
		return kindLayer, LayerRelay
	case "loop":
		return kindLayer, LayerLoop
	case "cmd":
		return kindLayer, LayerCmd
	case "bench":
		return kindBench, 0
	case "internal":
		return kindHelper, 0
	}
	return kindUnknown, 0
}

// Package is one package's import path and everything it imports, its
// tests' imports included.
type Package struct {
	Path    string
	Imports []string
}

// Check returns one line per import that breaks the rules; none when the
// layout holds.
func Check(pkgs []Package) []string {
	var bad []string
	for _, p := range pkgs {
		from, fromLayer := classify(p.Path)
		for _, imp := range p.Imports {
			to, toLayer := classify(imp)
			if to == kindOutside || imp == p.Path {
				continue
			}
			switch {
			case from == kindUnknown:
				bad = append(bad, fmt.Sprintf("package in no known layer: %s", p.Path))
			case from == kindBench:
				if to != kindBench && !(to == kindLayer && toLayer == LayerWsframe) && to != kindHelper {
					bad = append(bad, fmt.Sprintf("bench imports the product beyond wsframe: %s → %s", p.Path, imp))
				}
			case from == kindHelper:
				if to != kindHelper {
					bad = append(bad, fmt.Sprintf("internal helper imports the product: %s → %s", p.Path, imp))
				}
			case to == kindHelper:
			case to != kindLayer || toLayer > fromLayer:
				bad = append(bad, fmt.Sprintf("upward import: %s → %s", p.Path, imp))
			}
		}
	}
	return bad
}
