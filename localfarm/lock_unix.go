//go:build unix

package localfarm

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock on dir/farm.lock so that two farms never
// share one data directory; the lock goes with the process.
func lockDir(dir string) (func(), error) {
	path := filepath.Join(dir, "farm.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("localfarm: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("localfarm: data dir %s is in use by another farm (lock %s): %w", dir, path, err)
	}
	return func() { f.Close() }, nil
}
