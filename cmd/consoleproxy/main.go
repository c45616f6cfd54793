// Command consoleproxy is the console proxy. It is not built yet; see README.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "consoleproxy: not built yet")
	os.Exit(1)
}
