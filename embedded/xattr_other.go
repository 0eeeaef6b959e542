//go:build !unix

package embedded

// useXattrs keeps object metadata in the sidecar folder where there are no
// user xattrs to probe.
func useXattrs(buckets, metaDir string) bool { return false }
