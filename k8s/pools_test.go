package k8s

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Labels the manifests use to say what a pod is.
const (
	componentLabel = "app.kubernetes.io/component"
	classLabel     = "latentfarm.io/class"
	poolLabel      = "latentfarm.io/pool"
	gpuProduct     = "nvidia.com/gpu.product"
	gpuResource    = corev1.ResourceName("nvidia.com/gpu")
)

// drainMargin is what a node needs after its drain timeout to deregister
// from etcd and close its connections: the grace period is drain + margin.
const drainMargin = 30 * time.Second

// spotSelectors are the node labels of spot/preemptible capacity on GKE, EKS
// managed node groups and Karpenter.
var spotSelectors = map[string]string{
	"cloud.google.com/gke-spot":      "true",
	"eks.amazonaws.com/capacityType": "SPOT",
	"karpenter.sh/capacity-type":     "spot",
}

// wantClasses are the classes each overlay must have a pool for.
var wantClasses = map[string][]wire.Class{
	"overlays/dev":      {"cpu8"},
	"overlays/gpu":      {"cuda16", "cuda24", "cuda48", "cuda80"},
	"overlays/external": {"cuda16", "cuda24", "cuda48", "cuda80"},
}

// pool is a node Deployment and what the contract reads from it.
type pool struct {
	*appsv1.Deployment
	Name  string // latentfarm.io/pool
	Class wire.Class
	Node  *corev1.Container
}

// nodePools returns the node Deployments of b, failing t when one lacks its
// class, pool or node container.
func nodePools(t *testing.T, b *build) []pool {
	t.Helper()
	var out []pool
	for _, d := range typed[*appsv1.Deployment](b) {
		if d.Labels[componentLabel] != "node" {
			continue
		}
		p := pool{Deployment: d, Name: d.Labels[poolLabel], Class: wire.Class(d.Labels[classLabel])}
		if _, _, err := wire.ParseClass(p.Class); err != nil {
			t.Errorf("Deployment %s: label %s: %v", d.Name, classLabel, err)
			continue
		}
		if p.Name == "" {
			t.Errorf("Deployment %s: no %s label", d.Name, poolLabel)
		}
		for i := range d.Spec.Template.Spec.Containers {
			if c := &d.Spec.Template.Spec.Containers[i]; c.Name == "node" {
				p.Node = c
			}
		}
		if p.Node == nil || farmCommand(*p.Node) != "node" {
			t.Errorf("Deployment %s: no container \"node\" running `/farm node`", d.Name)
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		t.Fatal("no node Deployments")
	}
	return out
}

// flagValue returns the value of a flag in args, given as --name v, --name=v
// or with one dash, as Go's flag package reads them.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		for _, prefix := range []string{"--" + name, "-" + name} {
			if a == prefix && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, prefix+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

func TestOverlays_PoolsForEveryClass(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			b := built(t, dir)
			have := map[wire.Class]bool{}
			spot := false
			for _, p := range nodePools(t, b) {
				have[p.Class] = true
				for k, v := range spotSelectors {
					spot = spot || p.Spec.Template.Spec.NodeSelector[k] == v
				}
			}
			for _, c := range wantClasses[dir] {
				if !have[c] {
					t.Errorf("no node pool of class %s", c)
				}
			}
			if strings.Contains(dir, "gpu") && !spot {
				t.Error("no spot/preemptible pool")
			}
			servers := len(typed[*appsv1.StatefulSet](b)) > 0
			if wantServers := dir != "overlays/external"; servers != wantServers {
				t.Errorf("in-cluster servers (StatefulSets): %v, want %v", servers, wantServers)
			}
		})
	}
}

func TestNodePools_GracePeriodIsDrainTimeoutPlus30s(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			for _, p := range nodePools(t, built(t, dir)) {
				v, ok := flagValue(p.Node.Args, "drain-timeout")
				if !ok {
					t.Errorf("Deployment %s: no --drain-timeout in the node's args %q", p.Deployment.Name, p.Node.Args)
					continue
				}
				drain, err := time.ParseDuration(v)
				if err != nil {
					t.Errorf("Deployment %s: --drain-timeout %q: %v", p.Deployment.Name, v, err)
					continue
				}
				want := int64((drain + drainMargin) / time.Second)
				got := p.Spec.Template.Spec.TerminationGracePeriodSeconds
				if got == nil || *got != want {
					t.Errorf("Deployment %s: terminationGracePeriodSeconds %v, want %d (--drain-timeout %s + %s)", p.Deployment.Name, deref(got), want, drain, drainMargin)
				}
			}
		})
	}
}

func TestNodePools_SchedulingFitsTheClass(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			for _, p := range nodePools(t, built(t, dir)) {
				name := "Deployment " + p.Deployment.Name
				if p.Spec.Replicas != nil {
					t.Errorf("%s: spec.replicas is set: KEDA owns it, and every apply would reset the pool", name)
				}
				backend, tier, _ := wire.ParseClass(p.Class)
				if got, _ := flagValue(p.Node.Args, "backend"); got != backend {
					t.Errorf("%s: --backend %q, want %q for class %s", name, got, backend, p.Class)
				}
				spec := p.Spec.Template.Spec
				req, lim := p.Node.Resources.Requests[gpuResource], p.Node.Resources.Limits[gpuResource]
				switch backend {
				case wire.BackendCUDA:
					if req.Value() != 1 || lim.Value() != 1 {
						t.Errorf("%s: nvidia.com/gpu requests %s, limits %s, want 1 and 1", name, req.String(), lim.String())
					}
					if spec.NodeSelector[gpuProduct] == "" {
						t.Errorf("%s: no nodeSelector on %s", name, gpuProduct)
					}
					if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool { return tol.Key == string(gpuResource) }) {
						t.Errorf("%s: no toleration for the %s taint", name, gpuResource)
					}
				case wire.BackendCPU:
					if !req.IsZero() || !lim.IsZero() {
						t.Errorf("%s: a CPU pool asks for GPUs", name)
					}
					// A CPU node offers the memory it is given; pinning it
					// to the tier keeps it in its class.
					if got, _ := flagValue(p.Node.Args, "vram-gib"); got != strconv.Itoa(tier.GiB) {
						t.Errorf("%s: --vram-gib %q, want %d for class %s", name, got, tier.GiB, p.Class)
					}
				}
				wantSpot := strings.HasSuffix(p.Name, "-spot")
				isSpot := false
				for k, v := range spotSelectors {
					isSpot = isSpot || spec.NodeSelector[k] == v
				}
				if isSpot != wantSpot {
					t.Errorf("%s: pool %q selects spot nodes: %v, want %v", name, p.Name, isSpot, wantSpot)
				}
			}
		})
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}
