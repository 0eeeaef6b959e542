package k8s

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// connectionsSecret is the one Secret the manifests reference; users create
// it from secret.example.env (README.md).
const connectionsSecret = "latentfarm-connections"

// podTemplate is the pod template of a workload.
type podTemplate struct {
	Owner string
	*corev1.PodTemplateSpec
}

func podTemplates(b *build) []podTemplate {
	var out []podTemplate
	for _, d := range typed[*appsv1.Deployment](b) {
		out = append(out, podTemplate{"Deployment " + d.Name, &d.Spec.Template})
	}
	for _, s := range typed[*appsv1.StatefulSet](b) {
		out = append(out, podTemplate{"StatefulSet " + s.Name, &s.Spec.Template})
	}
	for _, s := range typed[*appsv1.DaemonSet](b) {
		out = append(out, podTemplate{"DaemonSet " + s.Name, &s.Spec.Template})
	}
	return out
}

// farmCommand returns the farm subcommand c runs ("coordinator", "node"),
// or "" when c does not run the farm binary. The images' entrypoint is
// /farm <subcommand> (deploy/*.Containerfile); the manifests name it in
// command so that args hold only flags.
func farmCommand(c corev1.Container) string {
	if len(c.Command) == 2 && c.Command[0] == "/farm" {
		return c.Command[1]
	}
	return ""
}

func TestContainers_RequestsLimitsAndProbes(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			for _, pt := range podTemplates(built(t, dir)) {
				spec := pt.Spec
				for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
					name := pt.Owner + " container " + c.Name
					for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
						if q := c.Resources.Requests[r]; q.IsZero() {
							t.Errorf("%s: no %s request", name, r)
						}
					}
					if q := c.Resources.Limits[corev1.ResourceMemory]; q.IsZero() {
						t.Errorf("%s: no memory limit", name)
					}
					if c.LivenessProbe == nil || c.ReadinessProbe == nil {
						t.Errorf("%s: needs a liveness and a readiness probe", name)
						continue
					}
					checkProbe(t, name, "liveness", c, c.LivenessProbe)
					checkProbe(t, name, "readiness", c, c.ReadinessProbe)
					if farmCommand(c) == "" {
						continue
					}
					if p := c.LivenessProbe.HTTPGet; p == nil || p.Path != "/livez" {
						t.Errorf("%s: liveness probe must be GET /livez", name)
					}
					if p := c.ReadinessProbe.HTTPGet; p == nil || p.Path != "/readyz" {
						t.Errorf("%s: readiness probe must be GET /readyz", name)
					}
					// A node serves its probes on --metrics-listen.
					if farmCommand(c) == "node" {
						addr, _ := flagValue(c.Args, "metrics-listen")
						port := c.LivenessProbe.HTTPGet.Port
						if n, ok := containerPort(c, port); !ok || ":"+strconv.Itoa(int(n)) != addr {
							t.Errorf("%s: probes on port %s, but --metrics-listen is %q", name, port.String(), addr)
						}
					}
				}
			}
		})
	}
}

// checkProbe: an HTTP probe's port is one the container declares.
func checkProbe(t *testing.T, name, kind string, c corev1.Container, p *corev1.Probe) {
	t.Helper()
	switch {
	case p.HTTPGet != nil:
		if _, ok := containerPort(c, p.HTTPGet.Port); !ok {
			t.Errorf("%s: %s probe on port %s, which the container does not declare", name, kind, p.HTTPGet.Port.String())
		}
	case p.TCPSocket == nil && p.Exec == nil && p.GRPC == nil:
		t.Errorf("%s: %s probe has no handler", name, kind)
	}
}

// containerPort resolves a named or numbered port of c.
func containerPort(c corev1.Container, port intstr.IntOrString) (int32, bool) {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// secretish matches the names of settings that are secrets.
var secretish = regexp.MustCompile(`(?i)(password|secret|token|access_key|credentials)`)

func TestSecrets_OnlyReferencedNeverInManifests(t *testing.T) {
	example := exampleKeys(t)
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			b := built(t, dir)
			for _, o := range b.Objects {
				if o.GVK.Kind == "Secret" {
					t.Errorf("%s: the manifests must not carry a Secret; users create %s (README.md)", o, connectionsSecret)
				}
			}
			ref := func(where, secret, key string) {
				if secret != connectionsSecret {
					t.Errorf("%s: references Secret %q, want %s", where, secret, connectionsSecret)
				}
				if key != "" && !example[key] {
					t.Errorf("%s: key %s is not in secret.example.env", where, key)
				}
			}
			for _, pt := range podTemplates(b) {
				for _, c := range slices.Concat(pt.Spec.InitContainers, pt.Spec.Containers) {
					for _, e := range c.Env {
						where := pt.Owner + " env " + e.Name
						switch {
						case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
							ref(where, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
						case e.ValueFrom == nil && secretish.MatchString(e.Name):
							t.Errorf("%s: a secret as a literal value; take it from Secret %s", where, connectionsSecret)
						}
					}
					for _, e := range c.EnvFrom {
						if e.SecretRef != nil {
							ref(pt.Owner+" envFrom", e.SecretRef.Name, "")
						}
					}
				}
				for _, v := range pt.Spec.Volumes {
					if v.Secret != nil {
						ref(pt.Owner+" volume "+v.Name, v.Secret.SecretName, "")
					}
				}
			}
			for _, ta := range typed[*kedav1alpha1.TriggerAuthentication](b) {
				for _, s := range ta.Spec.SecretTargetRef {
					ref("TriggerAuthentication "+ta.Name+" "+s.Parameter, s.Name, s.Key)
				}
			}
		})
	}
	t.Run("files", func(t *testing.T) {
		generator := regexp.MustCompile(`(?m)^\s*(secretGenerator:|kind:\s*Secret\s*$)`)
		err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path == "testdata" {
				return filepath.SkipDir
			}
			if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if generator.Match(data) {
				t.Errorf("%s: holds a Secret or a secretGenerator; the Secret is created by hand from an ignored file", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ignore, err := os.ReadFile(".gitignore")
		if err != nil || !slices.Contains(strings.Fields(string(ignore)), "connections.env") {
			t.Errorf(".gitignore must ignore connections.env, the file README.md has users fill in (%v)", err)
		}
	})
}

// exampleKeys reads secret.example.env, failing t where it holds a value for
// a secret key other than a placeholder.
func exampleKeys(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open("secret.example.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("secret.example.env: %q is not KEY=VALUE", line)
			continue
		}
		keys[k] = true
		if secretish.MatchString(k) && v != "" && v != "change-me" {
			t.Errorf("secret.example.env: %s has a value; leave secrets as change-me", k)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestCoordinator_TwoReplicasPDBAndService(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			b := built(t, dir)
			var coord *appsv1.Deployment
			for _, d := range typed[*appsv1.Deployment](b) {
				if d.Labels[componentLabel] == "coordinator" {
					coord = d
				}
			}
			if coord == nil {
				t.Fatal("no coordinator Deployment")
			}
			if coord.Spec.Replicas == nil || *coord.Spec.Replicas != 2 {
				t.Errorf("coordinator replicas %v, want 2 (a leader and a follower)", deref(coord.Spec.Replicas))
			}
			podLabels := labels.Set(coord.Spec.Template.Labels)
			c := coord.Spec.Template.Spec.Containers[0]
			if farmCommand(c) != "coordinator" {
				t.Errorf("coordinator container command %q: want /farm coordinator", c.Command)
			}
			pdbs := 0
			for _, pdb := range typed[*policyv1.PodDisruptionBudget](b) {
				if selects(pdb.Spec.Selector, podLabels) {
					pdbs++
					if pdb.Spec.MinAvailable == nil || *pdb.Spec.MinAvailable != intstr.FromInt32(1) {
						t.Errorf("PodDisruptionBudget %s: minAvailable %v, want 1", pdb.Name, deref(pdb.Spec.MinAvailable))
					}
				}
			}
			if pdbs != 1 {
				t.Errorf("%d PodDisruptionBudgets cover the coordinator, want 1", pdbs)
			}
			svcOK := false
			for _, svc := range typed[*corev1.Service](b) {
				if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
					continue
				}
				for _, p := range svc.Spec.Ports {
					n, ok := containerPort(c, p.TargetPort)
					svcOK = svcOK || (p.Port == 8080 && ok && n == 8080)
				}
			}
			if !svcOK {
				t.Error("no Service with port 8080 onto the coordinator's port 8080")
			}
			sa := coord.Spec.Template.Spec.ServiceAccountName
			if !slices.ContainsFunc(typed[*corev1.ServiceAccount](b), func(s *corev1.ServiceAccount) bool { return s.Name == sa }) {
				t.Errorf("coordinator ServiceAccount %q is not in the build", sa)
			}
		})
	}
}

func selects(sel *metav1.LabelSelector, set labels.Set) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(set)
}

func TestNetworkPolicies_AdmitOnlyAPIAndMetrics(t *testing.T) {
	want := map[string]int32{"coordinator": 8080, "node": 9100}
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			b := built(t, dir)
			for _, pt := range podTemplates(b) {
				port, ok := want[pt.Labels[componentLabel]]
				if !ok {
					continue
				}
				covered := false
				for _, np := range typed[*networkingv1.NetworkPolicy](b) {
					if !selects(&np.Spec.PodSelector, labels.Set(pt.Labels)) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
						continue
					}
					covered = true
					for i, rule := range np.Spec.Ingress {
						where := "NetworkPolicy " + np.Name + " rule " + strconv.Itoa(i)
						if len(rule.From) == 0 {
							t.Errorf("%s: admits every source", where)
						}
						if len(rule.Ports) == 0 {
							t.Errorf("%s: admits every port", where)
						}
						for _, p := range rule.Ports {
							if p.Port == nil || p.Port.IntValue() != int(port) || p.EndPort != nil {
								t.Errorf("%s: admits port %v to %s pods, want only %d", where, deref(p.Port), pt.Labels[componentLabel], port)
							}
						}
						if pt.Labels[componentLabel] != "node" {
							continue
						}
						for _, from := range rule.From {
							if from.NamespaceSelector == nil || from.PodSelector != nil || from.IPBlock != nil {
								t.Errorf("%s: nodes admit only a Prometheus namespace (a namespaceSelector)", where)
							}
						}
					}
				}
				if !covered {
					t.Errorf("%s: no NetworkPolicy restricts ingress to it", pt.Owner)
				}
			}
		})
	}
}
