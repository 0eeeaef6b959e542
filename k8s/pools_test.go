package k8s

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/latentfarm/latentfarm/shared/wire"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
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

func TestNodePools_ScaleOnTheirClassBacklog(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			b := built(t, dir)
			pools := nodePools(t, b)
			scaled := typed[*kedav1alpha1.ScaledObject](b)
			targets := map[string]bool{}
			for _, p := range pools {
				targets[p.Namespace+"/"+p.Name] = true
				var mine []*kedav1alpha1.ScaledObject
				for _, so := range scaled {
					ref := so.Spec.ScaleTargetRef
					if ref != nil && ref.Name == p.Deployment.Name && so.Namespace == p.Namespace &&
						(ref.Kind == "" || ref.Kind == "Deployment") {
						mine = append(mine, so)
					}
				}
				if len(mine) != 1 {
					t.Errorf("Deployment %s (class %s): %d ScaledObjects scale it, want exactly 1", p.Deployment.Name, p.Class, len(mine))
					continue
				}
				checkBacklogScaling(t, b, p, mine[0])
			}
			for _, so := range scaled {
				ref := so.Spec.ScaleTargetRef
				if ref == nil || !slices.ContainsFunc(pools, func(p pool) bool { return p.Deployment.Name == ref.Name }) {
					t.Errorf("ScaledObject %s scales no node Deployment", so.Name)
				}
			}
		})
	}
}

// checkBacklogScaling holds so to the contract: three nats-jetstream
// triggers, one per priority, on exactly the class's consumers of TASKS;
// a formula that adds them once each; AverageValue on a target; scale to 0.
func checkBacklogScaling(t *testing.T, b *build, p pool, so *kedav1alpha1.ScaledObject) {
	t.Helper()
	name := "ScaledObject " + so.Name
	var want, got []string
	for _, prio := range wire.Priorities {
		want = append(want, wire.TaskConsumer(p.Class, prio))
	}
	for _, tr := range so.Spec.Triggers {
		m := tr.Metadata
		got = append(got, m["consumer"])
		if tr.Type != natsJetStreamScaler {
			t.Errorf("%s: trigger %q has type %q, want %s", name, tr.Name, tr.Type, natsJetStreamScaler)
		}
		if prio := wire.Priority(tr.Name); !prio.Valid() || m["consumer"] != wire.TaskConsumer(p.Class, prio) {
			t.Errorf("%s: trigger %q reads consumer %q: name each trigger for its priority and read tasks_<class>_<priority>", name, tr.Name, m["consumer"])
		}
		if m["stream"] != wire.TasksStream {
			t.Errorf("%s: trigger %q: stream %q, want %s", name, tr.Name, m["stream"], wire.TasksStream)
		}
		if m["account"] != "$G" {
			t.Errorf("%s: trigger %q: account %q, want $G (the default account)", name, tr.Name, m["account"])
		}
		checkMonitoringEndpoint(t, b, so, tr)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: triggers read consumers %v, want exactly %v", name, got, want)
	}
	if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount != 0 {
		t.Errorf("%s: minReplicaCount must be 0 (an idle class costs nothing)", name)
	}
	if so.Spec.CooldownPeriod == nil || *so.Spec.CooldownPeriod <= 0 {
		t.Errorf("%s: no cooldownPeriod before scaling to zero", name)
	}
	if so.Spec.MaxReplicaCount == nil || *so.Spec.MaxReplicaCount < 1 {
		t.Errorf("%s: maxReplicaCount must be set, at least 1", name)
	}
	if !so.IsUsingModifiers() {
		t.Errorf("%s: no spec.advanced.scalingModifiers: the class's backlog is the sum of its three triggers", name)
		return
	}
	sm := so.Spec.Advanced.ScalingModifiers
	if sm.MetricType != autoscalingv2.AverageValueMetricType {
		t.Errorf("%s: scalingModifiers.metricType %q, want AverageValue (nodes = backlog / target)", name, sm.MetricType)
	}
	if v, err := strconv.ParseFloat(sm.Target, 64); err != nil || v <= 0 {
		t.Errorf("%s: scalingModifiers.target %q: want a positive number of tasks per node", name, sm.Target)
	}
	// The formula, as KEDA compiles it, must give exactly the sum: trigger
	// i reads 10^i tasks, so any trigger left out, counted twice or scaled
	// shows in the digits.
	prog, err := kedav1alpha1.ValidateAndCompileScalingModifiers(so.DeepCopy())
	if err != nil {
		t.Errorf("%s: formula %q: %v", name, sm.Formula, err)
		return
	}
	env, sum := map[string]float64{}, 0.0
	for i, tr := range so.Spec.Triggers {
		env[tr.Name] = math.Pow(10, float64(i))
		sum += env[tr.Name]
	}
	res, err := expr.Run(prog, env)
	if err != nil {
		t.Errorf("%s: formula %q: %v", name, sm.Formula, err)
	} else if v, ok := res.(float64); !ok || v != sum {
		t.Errorf("%s: formula %q gives %v for triggers %v, want their sum %v", name, sm.Formula, res, env, sum)
	}
}

// checkMonitoringEndpoint: a trigger reads the NATS monitoring endpoint of
// the in-cluster NATS (nats.<namespace>.svc:8222, whose Service must exist),
// or takes it from a TriggerAuthentication (overlays/external).
func checkMonitoringEndpoint(t *testing.T, b *build, so *kedav1alpha1.ScaledObject, tr kedav1alpha1.ScaleTriggers) {
	t.Helper()
	ep, inMetadata := tr.Metadata["natsServerMonitoringEndpoint"]
	switch {
	case inMetadata:
		want := fmt.Sprintf("nats.%s.svc:8222", so.Namespace)
		if ep != want {
			t.Errorf("ScaledObject %s: trigger %q: natsServerMonitoringEndpoint %q, want %q", so.Name, tr.Name, ep, want)
		}
		found := false
		for _, svc := range typed[*corev1.Service](b) {
			for _, port := range svc.Spec.Ports {
				found = found || (svc.Name == "nats" && svc.Namespace == so.Namespace && port.Port == 8222)
			}
		}
		if !found {
			t.Errorf("ScaledObject %s: trigger %q reads %s, but the build has no Service nats with port 8222", so.Name, tr.Name, ep)
		}
	case tr.AuthenticationRef != nil:
		// checkKEDA has found the TriggerAuthentication and that it gives
		// natsServerMonitoringEndpoint; TestSecrets_* checks its Secret.
	default:
		t.Errorf("ScaledObject %s: trigger %q: no natsServerMonitoringEndpoint and no authenticationRef", so.Name, tr.Name)
	}
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
