//go:build unix

package safetensors

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// mmap maps size bytes of fh read-only.
func mmap(fh *os.File, size int) ([]byte, func([]byte) error, error) {
	if size == 0 {
		return nil, nil, errors.New("empty file")
	}
	buf, err := unix.Mmap(int(fh.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return buf, unix.Munmap, nil
}
