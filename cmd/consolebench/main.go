// Command consolebench is the load harness. It is not built yet; see README.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "consolebench: not built yet")
	os.Exit(1)
}
