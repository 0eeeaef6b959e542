package embedded

import "syscall"

// childSysProcAttr ties the child's life to ours and keeps it out of our
// process group. Pdeathsig: the kernel sends SIGTERM to the child when this
// process dies, so a killed farm leaves no gateway behind (Go checks after
// the prctl that the parent did not die meanwhile). Setpgid: a Ctrl-C in
// the terminal reaches only the farm, which stops the gateway last, after
// the nodes have uploaded their frames.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
}
