package k8s

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/latentfarm/latentfarm/k8s/internal/backlog"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// overlays are the kustomizations people deploy (README.md), the ones the
// generator writes the pools' triggers for.
var overlays = func() []string {
	var out []string
	for _, o := range backlog.Overlays {
		out = append(out, o.Dir)
	}
	return out
}()

// apiTypes maps every apiVersion/kind the manifests may use to its Go type:
// the built-in Kubernetes types (k8s.io/api) and KEDA's own (keda.sh).
var apiTypes = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(kedav1alpha1.AddToScheme(s))
	return s
}()

// object is one resource of a build, decoded into its API type.
type object struct {
	GVK             schema.GroupVersionKind
	Namespace, Name string
	// JSON is the resource as kustomize emitted it.
	JSON []byte
	// Typed is the decoded value (*appsv1.Deployment, *kedav1alpha1.ScaledObject, ...);
	// nil when the apiVersion/kind has no Go type or the JSON does not fit it.
	Typed runtime.Object
}

func (o object) String() string {
	return fmt.Sprintf("%s %s/%s", o.GVK.Kind, o.Namespace, o.Name)
}

// build is what one kustomization gave: its objects, and every problem the
// checker found in them.
type build struct {
	Objects  []object
	Problems []error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*build{}
)

// built checks dir once per test binary and returns the result.
func built(t *testing.T, dir string) *build {
	t.Helper()
	buildsMu.Lock()
	defer buildsMu.Unlock()
	if b, ok := builds[dir]; ok {
		return b
	}
	b, err := check(dir)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	builds[dir] = b
	return b
}

// check builds the kustomization in dir as `kubectl apply -k` would (the
// disk, kustomize's default load restrictions), decodes every resource
// strictly into its API type and runs KEDA's checks on the KEDA objects. An
// error means the build itself failed; problems with the objects are in
// Problems, all of them, not only the first.
func check(dir string) (*build, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build: %w", err)
	}
	b := &build{}
	for _, r := range m.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.GetKind(), r.GetName(), err)
		}
		o := object{
			GVK:       schema.FromAPIVersionAndKind(r.GetApiVersion(), r.GetKind()),
			Namespace: r.GetNamespace(),
			Name:      r.GetName(),
			JSON:      data,
		}
		typed, problems := decodeStrict(o.GVK, data)
		o.Typed = typed
		for _, p := range problems {
			b.Problems = append(b.Problems, fmt.Errorf("%s: %w", o, p))
		}
		b.Objects = append(b.Objects, o)
	}
	kedaProblems, err := checkKEDA(b.Objects)
	if err != nil {
		return nil, err
	}
	b.Problems = append(b.Problems, kedaProblems...)
	return b, nil
}

// decodeStrict decodes data into the Go type of gvk the way the API server
// reads a request with strict field validation: field names are case
// sensitive, and a field the type does not have or a field given twice is an
// error. It returns the typed value when the JSON fits the type at all.
func decodeStrict(gvk schema.GroupVersionKind, data []byte) (runtime.Object, []error) {
	obj, err := apiTypes.New(gvk)
	if err != nil {
		return nil, []error{fmt.Errorf("no API type for apiVersion %q kind %q", gvk.GroupVersion(), gvk.Kind)}
	}
	strict, err := sigsjson.UnmarshalStrict(data, obj)
	if err != nil {
		return nil, []error{fmt.Errorf("does not decode into %T: %w", obj, err)}
	}
	return obj, strict
}

// kedaModuleDir is where the KEDA module the tests compile against lies in
// the module cache; its CRDs and scaler sources are read from there, so the
// checks follow the version in go.mod.
var kedaModuleDir = sync.OnceValues(func() (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/kedacore/keda/v2")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m github.com/kedacore/keda/v2: %w: %s", err, stderr.String())
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("go list -m github.com/kedacore/keda/v2: module not downloaded")
	}
	if _, err := os.Stat(filepath.Join(dir, "config", "crd", "bases")); err != nil {
		return "", fmt.Errorf("keda module at %s has no CRDs: %w", dir, err)
	}
	return dir, nil
})

// typed returns the objects of b whose decoded type is T.
func typed[T runtime.Object](b *build) []T {
	var out []T
	for _, o := range b.Objects {
		if v, ok := o.Typed.(T); ok {
			out = append(out, v)
		}
	}
	return out
}
