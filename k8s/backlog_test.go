package k8s

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/latentfarm/latentfarm/k8s/internal/backlog"
	"github.com/latentfarm/latentfarm/shared/wire"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
)

// The contract of the pools' ScaledObjects (README.md, "Autoscaling on the
// backlog" and "What wakes a pool"), checked on the built overlays without
// package backlog, which writes them: each trigger reads one consumer of
// TASKS and is named for it, each counted class has its three consumers, the
// formula is their sum, and each class some pool serves is counted by the
// smallest pools that serve it, and only by them.

// scaledObjectsFor returns the ScaledObjects of b that scale p's Deployment.
func scaledObjectsFor(b *build, p pool) []*kedav1alpha1.ScaledObject {
	var out []*kedav1alpha1.ScaledObject
	for _, so := range typed[*kedav1alpha1.ScaledObject](b) {
		ref := so.Spec.ScaleTargetRef
		if ref != nil && ref.Name == p.Deployment.Name && so.Namespace == p.Namespace &&
			(ref.Kind == "" || ref.Kind == "Deployment") {
			out = append(out, so)
		}
	}
	return out
}

// triggerConsumer returns the class and priority of the consumer a trigger
// reads, which must be one the farm creates: wire.TaskConsumer of a known
// class and priority.
func triggerConsumer(tr kedav1alpha1.ScaleTriggers) (wire.Class, wire.Priority, error) {
	consumer := tr.Metadata["consumer"]
	for _, c := range wire.AllClasses() {
		for _, p := range wire.Priorities {
			if wire.TaskConsumer(c, p) == consumer {
				return c, p, nil
			}
		}
	}
	return "", "", fmt.Errorf("consumer %q is none the farm creates (wire.TaskConsumer of a class and priority)", consumer)
}

// countedClasses returns the classes whose consumers so reads.
func countedClasses(so *kedav1alpha1.ScaledObject) map[wire.Class]bool {
	out := map[wire.Class]bool{}
	for _, tr := range so.Spec.Triggers {
		if c, _, err := triggerConsumer(tr); err == nil {
			out[c] = true
		}
	}
	return out
}

// poolServes reports whether p's nodes, with the least memory of their
// class's tier, serve tasks of class c.
func poolServes(p pool, c wire.Class) bool {
	backend, tier, err := wire.ParseClass(p.Class)
	if err != nil {
		return false
	}
	ok, _ := wire.CanServe(backend, tier.TaskMaxBytes(), c)
	return ok
}

func poolTier(p pool) int {
	_, tier, _ := wire.ParseClass(p.Class)
	return tier.GiB
}

func TestNodePools_ScaleOnTheBacklogTheyCount(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			b := built(t, dir)
			pools := nodePools(t, b)
			for _, p := range pools {
				mine := scaledObjectsFor(b, p)
				if len(mine) != 1 {
					t.Errorf("Deployment %s (class %s): %d ScaledObjects scale it, want exactly 1", p.Deployment.Name, p.Class, len(mine))
					continue
				}
				checkBacklogScaling(t, b, mine[0])
			}
			for _, so := range typed[*kedav1alpha1.ScaledObject](b) {
				ref := so.Spec.ScaleTargetRef
				if ref == nil || !slices.ContainsFunc(pools, func(p pool) bool { return p.Deployment.Name == ref.Name }) {
					t.Errorf("ScaledObject %s scales no node Deployment", so.Name)
				}
			}
		})
	}
}

// checkBacklogScaling holds so to the contract: nats-jetstream triggers on
// consumers of TASKS, each named <class>_<priority> for the consumer it
// reads, each consumer read once, the three priorities of every class it
// reads; a formula that adds them once each; AverageValue on a target;
// scale to 0.
func checkBacklogScaling(t *testing.T, b *build, so *kedav1alpha1.ScaledObject) {
	t.Helper()
	name := "ScaledObject " + so.Name
	if len(so.Spec.Triggers) == 0 {
		t.Errorf("%s: no triggers: nothing wakes the pool", name)
	}
	read := map[string]int{}
	prios := map[wire.Class][]wire.Priority{}
	for _, tr := range so.Spec.Triggers {
		m := tr.Metadata
		if tr.Type != natsJetStreamScaler {
			t.Errorf("%s: trigger %q has type %q, want %s", name, tr.Name, tr.Type, natsJetStreamScaler)
		}
		c, prio, err := triggerConsumer(tr)
		if err != nil {
			t.Errorf("%s: trigger %q: %v", name, tr.Name, err)
		} else {
			if want := string(c) + "_" + string(prio); tr.Name != want {
				t.Errorf("%s: trigger %q reads %s: name it %q, for its class and priority", name, tr.Name, m["consumer"], want)
			}
			read[m["consumer"]]++
			prios[c] = append(prios[c], prio)
		}
		if m["stream"] != wire.TasksStream {
			t.Errorf("%s: trigger %q: stream %q, want %s", name, tr.Name, m["stream"], wire.TasksStream)
		}
		if m["account"] != "$G" {
			t.Errorf("%s: trigger %q: account %q, want $G (the default account)", name, tr.Name, m["account"])
		}
		checkMonitoringEndpoint(t, b, so, tr)
	}
	for consumer, n := range read {
		if n > 1 {
			t.Errorf("%s: %d triggers read %s: its tasks would count %d times", name, n, consumer, n)
		}
	}
	for c, got := range prios {
		for _, prio := range wire.Priorities {
			if !slices.Contains(got, prio) {
				t.Errorf("%s: counts class %s but not its consumer %s: that priority's tasks would wake nothing", name, c, wire.TaskConsumer(c, prio))
			}
		}
	}
	if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount != 0 {
		t.Errorf("%s: minReplicaCount must be 0 (an idle pool costs nothing)", name)
	}
	if so.Spec.CooldownPeriod == nil || *so.Spec.CooldownPeriod <= 0 {
		t.Errorf("%s: no cooldownPeriod before scaling to zero", name)
	}
	if so.Spec.MaxReplicaCount == nil || *so.Spec.MaxReplicaCount < 1 {
		t.Errorf("%s: maxReplicaCount must be set, at least 1", name)
	}
	if !so.IsUsingModifiers() {
		t.Errorf("%s: no spec.advanced.scalingModifiers: the pool's backlog is the sum of its triggers", name)
		return
	}
	sm := so.Spec.Advanced.ScalingModifiers
	if sm.MetricType != autoscalingv2.AverageValueMetricType {
		t.Errorf("%s: scalingModifiers.metricType %q, want AverageValue (nodes = backlog / target)", name, sm.MetricType)
	}
	if v, err := strconv.ParseFloat(sm.Target, 64); err != nil || v <= 0 {
		t.Errorf("%s: scalingModifiers.target %q: want a positive number of tasks per node", name, sm.Target)
	}
	checkFormulaIsTheSum(t, so)
}

// checkFormulaIsTheSum evaluates so's formula, as KEDA compiles it, with
// every trigger at 1 (it must give the number of triggers), at distinct
// powers of two (their sum shows each trigger's coefficient as a bit) and at
// random counts, so that a trigger left out, counted twice or scaled fails.
func checkFormulaIsTheSum(t *testing.T, so *kedav1alpha1.ScaledObject) {
	t.Helper()
	name := "ScaledObject " + so.Name
	formula := so.Spec.Advanced.ScalingModifiers.Formula
	prog, err := kedav1alpha1.ValidateAndCompileScalingModifiers(so.DeepCopy())
	if err != nil {
		t.Errorf("%s: formula %q: %v", name, formula, err)
		return
	}
	n := len(so.Spec.Triggers)
	if n > 52 {
		t.Fatalf("%s: %d triggers: the powers of two would not add exactly in a float64", name, n)
	}
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	values := []func(i int) float64{
		func(int) float64 { return 1 },
		func(i int) float64 { return math.Ldexp(1, i) },
		func(int) float64 { return float64(rng.IntN(1000)) },
		func(int) float64 { return float64(rng.IntN(1000)) },
		func(int) float64 { return float64(rng.IntN(1000)) },
	}
	for _, value := range values {
		env, sum := map[string]float64{}, 0.0
		for i, tr := range so.Spec.Triggers {
			env[tr.Name] = value(i)
			sum += env[tr.Name]
		}
		res, err := expr.Run(prog, env)
		if err != nil {
			t.Errorf("%s: formula %q: %v", name, formula, err)
			return
		}
		if v, ok := res.(float64); !ok || v != sum {
			t.Errorf("%s: formula %q gives %v for triggers %v, want their sum %v", name, formula, res, env, sum)
			return
		}
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

// TestOverlays_EachClassWakesItsSmallestPools: with every pool at zero, a
// task must wake a pool that serves it, and only the smallest: every class
// some pool of the overlay serves is counted by the pools of one class, of
// the smallest tier that serves it (CUDA before CPU at equal tier), all of
// them (pools of one class share their number), and by no other pool; a
// class no pool serves is counted by none.
func TestOverlays_EachClassWakesItsSmallestPools(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			b := built(t, dir)
			pools := nodePools(t, b)
			counts := map[string]map[wire.Class]bool{} // by Deployment
			for _, p := range pools {
				if mine := scaledObjectsFor(b, p); len(mine) == 1 {
					counts[p.Deployment.Name] = countedClasses(mine[0])
				}
			}
			for _, c := range wire.AllClasses() {
				checkClassCountedOnce(t, c, pools, counts)
			}
		})
	}
}

func checkClassCountedOnce(t *testing.T, c wire.Class, pools []pool, counts map[string]map[wire.Class]bool) {
	t.Helper()
	var servers, readers []pool
	for _, p := range pools {
		if poolServes(p, c) {
			servers = append(servers, p)
		}
		if counts[p.Deployment.Name][c] {
			readers = append(readers, p)
		}
	}
	names := func(ps []pool) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.Name)
		}
		return strings.Join(s, ", ")
	}
	if len(servers) == 0 {
		if len(readers) > 0 {
			t.Errorf("class %s: no pool serves it, yet pools %s count it: they would wake for tasks they cannot take", c, names(readers))
		}
		return
	}
	// The owner: the smallest tier that serves c, CUDA before CPU.
	owner := servers[0]
	for _, p := range servers[1:] {
		if poolTier(p) < poolTier(owner) || (poolTier(p) == poolTier(owner) && strings.HasPrefix(string(p.Class), "cuda") && !strings.HasPrefix(string(owner.Class), "cuda")) {
			owner = p
		}
	}
	if len(readers) == 0 {
		t.Errorf("class %s: no pool counts it, so with every pool at zero its tasks wake nothing; pool %s (class %s) should", c, owner.Name, owner.Class)
		return
	}
	for _, p := range readers {
		if !poolServes(p, c) {
			t.Errorf("class %s: pool %s (class %s) counts it but cannot serve it", c, p.Name, p.Class)
		} else if p.Class != owner.Class {
			t.Errorf("class %s: pool %s (class %s) counts it, but %s is the smallest pool class that serves it: only its pools may", c, p.Name, p.Class, owner.Class)
		}
	}
	for _, p := range pools {
		if p.Class == owner.Class && !counts[p.Deployment.Name][c] {
			t.Errorf("class %s: pool %s (class %s) does not count it: pools of one class share their number", c, p.Name, p.Class)
		}
	}
}

// TestGenerated_FilesAreUpToDate: the pools' triggers and the external
// overlay's endpoint patches are what `go generate ./k8s/` writes, so they
// cannot drift from the pools the overlays deploy.
func TestGenerated_FilesAreUpToDate(t *testing.T) {
	plan, err := backlog.NewPlan(".", backlog.Overlays)
	if err != nil {
		t.Fatal(err)
	}
	files := plan.Files()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		got, err := os.ReadFile(filepath.FromSlash(name))
		switch {
		case err != nil:
			t.Errorf("%v: run go generate ./k8s/", err)
		case !bytes.Equal(got, files[name]):
			t.Errorf("%s is not what the generator writes: run go generate ./k8s/ (and change the generator, k8s/internal/backlog, not the file)", name)
		}
	}
	for _, dir := range plan.GeneratedDirs() {
		entries, err := os.ReadDir(filepath.FromSlash(dir))
		if err != nil {
			t.Error(err)
			continue
		}
		for _, e := range entries {
			if _, ok := files[path.Join(dir, e.Name())]; !ok {
				t.Errorf("%s/%s: not generated, in a generated folder: run go generate ./k8s/, which removes it", dir, e.Name())
			}
		}
	}
}
