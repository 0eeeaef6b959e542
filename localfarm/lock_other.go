//go:build !unix

package localfarm

// lockDir is a no-op where flock is missing: do not start two farms on one dir.
func lockDir(string) (func(), error) { return func() {}, nil }
