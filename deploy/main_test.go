package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if farmBuild.dir != "" {
		_ = os.RemoveAll(farmBuild.dir)
	}
	os.Exit(code)
}

// repoRoot is the module root: tests run in deploy/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// farmBuild is the farm binary, built once for every test that needs it.
var farmBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// farmBinary builds ./cmd/farm as `make build` does (with cgo when the
// toolchain has it) and returns its path. The samples are checked against
// this binary, not against a copy of its config structs.
func farmBinary(t *testing.T) string {
	t.Helper()
	farmBuild.once.Do(func() {
		farmBuild.dir, farmBuild.err = os.MkdirTemp("", "latentfarm-deploy-")
		if farmBuild.err != nil {
			return
		}
		farmBuild.path = filepath.Join(farmBuild.dir, "farm")
		cmd := exec.Command("go", "build", "-o", farmBuild.path, "./cmd/farm")
		cmd.Dir = repoRoot(t)
		farmBuild.out, farmBuild.err = cmd.CombinedOutput()
	})
	if farmBuild.err != nil {
		t.Fatalf("go build ./cmd/farm: %v\n%s", farmBuild.err, farmBuild.out)
	}
	return farmBuild.path
}
