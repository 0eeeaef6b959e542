// Package k8s holds the farm's Kubernetes manifests: a kustomize base (the
// coordinators), a node pool template with one pool per class, in-cluster
// servers for trying the farm, and the overlays people deploy (dev, gpu,
// external). See README.md.
//
// The package has no code the farm runs. Its tests build every overlay with
// kustomize, decode each object strictly into the Kubernetes and KEDA API
// types, check the KEDA objects against KEDA's own CRD schemas and validation,
// and hold the manifests to the farm's contract: one ScaledObject per pool,
// every class some pool serves counted by exactly the smallest pools that
// serve it, probes, requests, no secrets in files, and a grace period that
// covers the node's drain.
//
// The pools' triggers are generated (internal/gen, internal/backlog): after
// adding a pool or changing an overlay's pools, run `go generate ./k8s/`.
//
// Nothing here may hold a Secret or a credential: the manifests reference the
// Secret latentfarm-connections, which users create from an ignored file.
package k8s

//go:generate go run ./internal/gen
