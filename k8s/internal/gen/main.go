// Command gen writes the generated parts of the k8s folder: each node pool's
// ScaledObject triggers and formula, and the component that points them at
// the TriggerAuthentication in overlays/external (package backlog decides
// which pool counts which classes). Run it as `go generate ./k8s/`, which
// runs it in the k8s folder; TestGenerated_FilesAreUpToDate fails until the
// committed files are what it writes.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/latentfarm/latentfarm/k8s/internal/backlog"
)

func main() {
	root := flag.String("root", ".", "the k8s folder")
	flag.Parse()
	if err := backlog.Write(*root); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
