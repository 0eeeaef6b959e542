// Package wire holds what the coordinator, the nodes and the CLI say to each
// other: job specs and their validation, tasks, results, progress events, node
// entries, API bodies, stable error codes, and the names of NATS subjects and
// streams, etcd keys and S3 keys.
//
// It is pure data and pure functions: it must never open a connection, read
// the clock for decisions, log, or import the engine or any farm component.
package wire
