//go:build !linux

package embedded

import "syscall"

// childSysProcAttr: only Linux can tie the child's life to ours; elsewhere
// Close must be called (farm up does, on every exit path).
func childSysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
