//go:build unix

package embedded

import (
	"os"

	"golang.org/x/sys/unix"
)

// useXattrs reports whether object metadata goes into extended attributes
// of the object files: when the file system under buckets takes user xattrs
// and no earlier run of this data dir keeps metadata in metaDir. The
// alternative, a sidecar folder, creates and renames a file per attribute of
// every object; on ext4 that inode churn made the gateway the farm's
// bottleneck (about 3.4 ms of CPU per small PUT, 0.4 ms with xattrs).
func useXattrs(buckets, metaDir string) bool {
	if entries, err := os.ReadDir(metaDir); err == nil && len(entries) > 0 {
		return false
	}
	f, err := os.CreateTemp(buckets, ".xattr-probe-")
	if err != nil {
		return false
	}
	defer os.Remove(f.Name())
	defer f.Close()
	return unix.Fsetxattr(int(f.Fd()), "user.latentfarm.probe", []byte("1"), 0) == nil
}
