// Package e2e holds the end-to-end tests of the whole farm: real
// coordinators and real node agents (in this process, or as child processes
// a test can SIGKILL or SIGTERM) against the real NATS, etcd and S3 servers
// that shared/farmtest starts on loopback. The farm benchmark lives here too,
// behind the build tag farmbench (see scripts/bench-farm.sh).
//
// It holds tests only: nothing may import it, and it must never replace a
// server, a coordinator or a node with a stand-in.
package e2e
