//go:build !unix

package safetensors

import (
	"errors"
	"os"
)

// mmap is unavailable here; Open falls back to reading the file.
func mmap(fh *os.File, size int) ([]byte, func([]byte) error, error) {
	return nil, nil, errors.New("mmap not supported on this platform")
}
