//go:build !go1.25

// Command login needs Go 1.25 or newer, for http.CrossOriginProtection;
// with an older Go it only says so. See main.go.
package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	fmt.Fprintf(os.Stderr, "examples/login needs Go 1.25 or newer (it uses http.CrossOriginProtection); this is %s\n", runtime.Version())
	os.Exit(1)
}
