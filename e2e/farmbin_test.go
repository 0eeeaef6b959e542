package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/shared/farmtest"
)

// buildFarm builds the farm command into a folder of the test.
func buildFarm(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "farm")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/latentfarm/latentfarm/cmd/farm").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/farm: %v\n%s", err, out)
	}
	return bin
}

// farmProc is a farm command run as a child process.
type farmProc struct {
	cmd  *exec.Cmd
	out  *farmtest.SyncBuffer
	done chan struct{}
}

// runFarm starts `bin args...` with env added to an environment that has
// no FARM_ variable of this machine's, and stops it (SIGTERM, then SIGKILL
// after 20s) at cleanup, logging its output if the test failed.
func runFarm(t *testing.T, bin string, env []string, args ...string) *farmProc {
	t.Helper()
	p := &farmProc{cmd: exec.Command(bin, args...), out: &farmtest.SyncBuffer{}, done: make(chan struct{})}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FARM_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("farm %s:\n%s", strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits up to 20s, then kills.
func (p *farmProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process has ended.
func (p *farmProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// farmOutput runs `bin args...` to its end and returns its output and error.
func farmOutput(t *testing.T, bin string, env []string, args ...string) (string, error) {
	t.Helper()
	p := runFarm(t, bin, env, args...)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("farm %s did not end within 60s", strings.Join(args, " "))
	}
	if !p.cmd.ProcessState.Success() {
		return p.out.String(), &exec.ExitError{ProcessState: p.cmd.ProcessState}
	}
	return p.out.String(), nil
}
