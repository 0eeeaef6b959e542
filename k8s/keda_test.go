package k8s

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The KEDA objects are checked three ways, all against KEDA itself at the
// version go.mod requires (github.com/kedacore/keda/v2):
//   - decodeStrict decodes them into KEDA's Go types (apis/keda/v1alpha1),
//     the structs KEDA's operator reads them into;
//   - crdSchema validates them against the OpenAPI schema of KEDA's published
//     CRDs (config/crd/bases in the module), as the API server does on apply:
//     unknown fields, types, enums, minimums, required fields;
//   - validateScaledObject runs the checks of KEDA's admission webhook that
//     need no cluster (trigger names, replica bounds, fallback, the scaling
//     formula compiled against the trigger names), and the trigger metadata
//     keys against the parameters KEDA's nats-jetstream scaler parses.

// checkKEDA returns the problems of the KEDA objects among objs. An error
// means KEDA's own files could not be read.
func checkKEDA(objs []object) ([]error, error) {
	var problems []error
	auths := map[string]*kedav1alpha1.TriggerAuthentication{}
	var kedaObjs []object
	for _, o := range objs {
		if o.GVK.Group != kedav1alpha1.GroupVersion.Group {
			continue
		}
		kedaObjs = append(kedaObjs, o)
		if ta, ok := o.Typed.(*kedav1alpha1.TriggerAuthentication); ok {
			auths[o.Namespace+"/"+o.Name] = ta
		}
	}
	if len(kedaObjs) == 0 {
		return nil, nil
	}
	crds, err := kedaCRDs()
	if err != nil {
		return nil, err
	}
	params, err := natsJetStreamParams()
	if err != nil {
		return nil, err
	}
	for _, o := range kedaObjs {
		crd, ok := crds[o.GVK.Kind]
		if !ok || crd.version != o.GVK.Version {
			problems = append(problems, fmt.Errorf("%s: KEDA publishes no CRD for %s", o, o.GVK))
			continue
		}
		for _, p := range crd.check(o.JSON) {
			problems = append(problems, fmt.Errorf("%s: KEDA CRD schema: %w", o, p))
		}
		if so, ok := o.Typed.(*kedav1alpha1.ScaledObject); ok {
			for _, p := range validateScaledObject(so, auths, params) {
				problems = append(problems, fmt.Errorf("%s: %w", o, p))
			}
		}
	}
	return problems, nil
}

// validateScaledObject runs KEDA's own validation of so and checks each
// nats-jetstream trigger's metadata against the scaler's parameters.
func validateScaledObject(so *kedav1alpha1.ScaledObject, auths map[string]*kedav1alpha1.TriggerAuthentication, params map[string]scalerParam) []error {
	var problems []error
	add := func(err error) {
		if err != nil {
			problems = append(problems, fmt.Errorf("KEDA validation: %w", err))
		}
	}
	add(kedav1alpha1.ValidateTriggers(so.Spec.Triggers))
	add(kedav1alpha1.CheckReplicaCountBoundsAreValid(so))
	add(kedav1alpha1.CheckFallbackValid(so))
	if so.IsUsingModifiers() {
		// It rewrites the formula in place (float(...)): give it a copy.
		_, err := kedav1alpha1.ValidateAndCompileScalingModifiers(so.DeepCopy())
		add(err)
	}
	for i, tr := range so.Spec.Triggers {
		if tr.Type != natsJetStreamScaler {
			continue
		}
		var fromAuth map[string]bool
		if ref := tr.AuthenticationRef; ref != nil {
			ta, ok := auths[so.Namespace+"/"+ref.Name]
			if !ok || (ref.Kind != "" && ref.Kind != "TriggerAuthentication") {
				problems = append(problems, fmt.Errorf("trigger %d (%q): authenticationRef %s %q: no such TriggerAuthentication in the build", i, tr.Name, ref.Kind, ref.Name))
			} else {
				fromAuth = map[string]bool{}
				for _, s := range ta.Spec.SecretTargetRef {
					fromAuth[s.Parameter] = true
				}
			}
		}
		problems = append(problems, checkScalerMetadata(i, tr, params, fromAuth)...)
	}
	return problems
}

// natsJetStreamScaler is the trigger type of KEDA's JetStream scaler.
const natsJetStreamScaler = "nats-jetstream"

// checkScalerMetadata reports metadata keys the scaler does not read (a
// misspelt key is silently ignored by KEDA, and its default used) and
// required parameters that neither the metadata nor the trigger's
// authentication gives.
func checkScalerMetadata(i int, tr kedav1alpha1.ScaleTriggers, params map[string]scalerParam, fromAuth map[string]bool) []error {
	var problems []error
	known := slices.Sorted(maps.Keys(params))
	for _, k := range slices.Sorted(maps.Keys(tr.Metadata)) {
		p, ok := params[k]
		if !ok || !slices.Contains(p.orders, "triggerMetadata") {
			problems = append(problems, fmt.Errorf("trigger %d (%q): metadata %q is not a trigger parameter of KEDA's %s scaler (it reads %s)",
				i, tr.Name, k, natsJetStreamScaler, strings.Join(known, ", ")))
		}
	}
	for _, name := range known {
		p := params[name]
		if !p.required || tr.Metadata[name] != "" {
			continue
		}
		if fromAuth[name] && slices.Contains(p.orders, "authParams") {
			continue
		}
		problems = append(problems, fmt.Errorf("trigger %d (%q): KEDA's %s scaler needs %q", i, tr.Name, natsJetStreamScaler, name))
	}
	return problems
}

// scalerParam is one parameter a KEDA scaler parses, from its `keda:"..."`
// struct tag: where it is looked up (triggerMetadata, authParams,
// resolvedEnv), and whether it must be given.
type scalerParam struct {
	orders   []string
	required bool
}

// natsJetStreamParams reads the parameters of KEDA's nats-jetstream scaler
// from its source in the KEDA module: the tagged fields of the metadata
// struct its trigger is parsed into (pkg/scalers/nats_jetstream_scaler.go).
var natsJetStreamParams = sync.OnceValues(func() (map[string]scalerParam, error) {
	dir, err := kedaModuleDir()
	if err != nil {
		return nil, err
	}
	const structName = "natsJetStreamMetadata"
	path := filepath.Join(dir, "pkg", "scalers", "nats_jetstream_scaler.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("keda scaler source: %w", err)
	}
	params := map[string]scalerParam{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != structName {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return false
		}
		for _, field := range st.Fields.List {
			if field.Tag == nil {
				continue
			}
			tag, err := strconv.Unquote(field.Tag.Value)
			if err != nil {
				continue
			}
			if name, p, ok := parseKEDATag(reflect.StructTag(tag).Get("keda")); ok {
				params[name] = p
			}
		}
		return false
	})
	if len(params) == 0 {
		return nil, fmt.Errorf("keda scaler source %s: no tagged fields in %s", path, structName)
	}
	return params, nil
})

// parseKEDATag reads a tag such as "name=lagThreshold, order=triggerMetadata,
// default=10" (KEDA's pkg/scalers/scalersconfig/typed_config.go).
func parseKEDATag(tag string) (name string, p scalerParam, ok bool) {
	if tag == "" {
		return "", p, false
	}
	optional, hasDefault := false, false
	for _, part := range strings.Split(tag, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "name":
			name = v
		case "order":
			p.orders = strings.Split(v, ";")
		case "optional":
			optional = true
		case "default":
			hasDefault = true
		}
	}
	p.required = !optional && !hasDefault
	return name, p, name != ""
}

// crdSchema is the schema of one served version of a KEDA CRD.
type crdSchema struct {
	version    string
	validator  validation.SchemaValidator
	structural *structuralschema.Structural
}

// check validates an object's JSON as the API server would on create:
// unknown fields (pruning with strict field validation), then the OpenAPI
// value rules. CEL rules (x-kubernetes-validations) are not evaluated here;
// KEDA's own Go checks cover the one a ScaledObject has (min <= max).
func (c *crdSchema) check(data []byte) []error {
	var problems []error
	var obj map[string]any
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(data, &obj); err != nil {
		return []error{err}
	}
	for _, e := range validation.ValidateCustomResource(nil, obj, c.validator) {
		problems = append(problems, e)
	}
	unknown := pruning.PruneWithOptions(obj, c.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, path := range unknown {
		problems = append(problems, fmt.Errorf("unknown field %q", path))
	}
	return problems
}

// kedaCRDs reads KEDA's published CRDs (group keda.sh) from the module, by
// kind, with the schema of their storage version.
var kedaCRDs = sync.OnceValues(func() (map[string]*crdSchema, error) {
	dir, err := kedaModuleDir()
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "config", "crd", "bases", "keda.sh_*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("keda CRDs under %s: none found (%v)", dir, err)
	}
	out := map[string]*crdSchema{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, v := range crd.Spec.Versions {
			if !v.Storage || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			var internal apiextensions.JSONSchemaProps
			if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			validator, _, err := validation.NewSchemaValidator(&internal)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			structural, err := structuralschema.NewStructural(&internal)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			out[crd.Spec.Names.Kind] = &crdSchema{version: v.Name, validator: validator, structural: structural}
		}
	}
	return out, nil
})
