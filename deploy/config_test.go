package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sampleConfigs are the shipped configs and the struct in cmd/farm that
// decodes each (with DisallowUnknownFields).
var sampleConfigs = []struct {
	command, file, goType string
}{
	{"coordinator", "config/coordinator.json", "coordinatorConfig"},
	{"node", "config/node.json", "nodeConfig"},
}

// TestConfigSamples_RealBinaryAcceptsThem starts the real farm coordinator
// and farm node with each sample. The binary decodes the file strictly, merges
// flags and environment, validates the options and only then dials NATS,
// which is pointed at a closed port: an error about that dial proves the
// whole file was accepted, while a broken sample stops earlier with
// `config FILE: json: unknown field ...` or a usage error (exit code 2).
func TestConfigSamples_RealBinaryAcceptsThem(t *testing.T) {
	farm := farmBinary(t)
	for _, s := range sampleConfigs {
		t.Run(s.command, func(t *testing.T) {
			closed := closedAddr(t)
			code, out := runWithConfig(t, farm, s.command, s.file, closed)
			if code != 1 || strings.Contains(out, "json:") {
				t.Fatalf("farm %s rejected %s (exit %d):\n%s", s.command, s.file, code, out)
			}
			if !strings.Contains(out, "connect: nats nats://"+closed) {
				t.Fatalf("farm %s --config %s: want it to fail dialling nats://%s, got (exit %d):\n%s", s.command, s.file, closed, code, out)
			}
		})
	}
}

// TestConfigSamples_RealBinaryRejectsUnknownKey shows that the check above
// has teeth: a sample with a misspelt key stops the binary before it dials.
func TestConfigSamples_RealBinaryRejectsUnknownKey(t *testing.T) {
	farm := farmBinary(t)
	for _, s := range sampleConfigs {
		t.Run(s.command, func(t *testing.T) {
			data, err := os.ReadFile(s.file)
			if err != nil {
				t.Fatal(err)
			}
			bad := bytes.Replace(data, []byte(`"nats": {`), []byte(`"natz": {`), 1)
			if bytes.Equal(bad, data) {
				t.Fatalf("%s has no \"nats\" key to misspell", s.file)
			}
			file := filepath.Join(t.TempDir(), filepath.Base(s.file))
			if err := os.WriteFile(file, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			closed := closedAddr(t)
			code, out := runWithConfig(t, farm, s.command, file, closed)
			if code == 0 || !strings.Contains(out, `json: unknown field "natz"`) {
				t.Fatalf("farm %s --config with a misspelt key: want a json unknown field error, got (exit %d):\n%s", s.command, code, out)
			}
		})
	}
}

// runWithConfig runs `farm command --config file` with the environment a
// deployment sets beside the file: the secrets, which the samples leave to
// the environment, and the endpoints, moved to closed (a loopback address
// nothing listens on) because the samples name compose services. It returns
// the exit code and the output.
func runWithConfig(t *testing.T, farm, command, file, closed string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, farm, command, "--config", file)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"FARM_DATA=" + t.TempDir(),
		"FARM_TOKEN=test-token",
		"FARM_NATS_PASSWORD=test-password",
		"FARM_S3_ACCESS_KEY=test-access",
		"FARM_S3_SECRET_KEY=test-secret",
		"FARM_NATS_URL=nats://" + closed,
		"FARM_ETCD_ENDPOINTS=http://" + closed,
		"FARM_S3_ENDPOINT=http://" + closed,
		"FARM_LISTEN=127.0.0.1:0",
		"FARM_METRICS_LISTEN=127.0.0.1:0",
		// models_dir is the images' /models, which the node checks before
		// it dials; here it is an empty folder.
		"FARM_MODELS=" + t.TempDir(),
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("farm %s --config %s did not exit within 30s against a closed port; output:\n%s", command, file, out.String())
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String()
	}
	t.Fatalf("farm %s: %v", command, err)
	return -1, ""
}

// TestConfigSamples_SetEveryOption reads the config structs from the source
// of cmd/farm (and the connection structs they embed) and checks that each
// sample sets every key the binary reads and that config/README.md explains
// each one that is not an object: a new option must reach the samples and
// their page.
func TestConfigSamples_SetEveryOption(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile("config/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sampleConfigs {
		t.Run(s.command, func(t *testing.T) {
			want, err := structKeys(root, filepath.Join(root, "cmd", "farm"), s.goType)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) < 10 {
				t.Fatalf("found only %d keys in %s: the source walk is broken: %v", len(want), s.goType, want)
			}
			got, err := sampleKeys(s.file)
			if err != nil {
				t.Fatal(err)
			}
			var missing, undocumented []string
			for i, k := range want {
				if !got[k] {
					missing = append(missing, k)
				}
				parent := i+1 < len(want) && strings.HasPrefix(want[i+1], k+".")
				if !parent && !bytes.Contains(readme, []byte("`"+k+"`")) {
					undocumented = append(undocumented, k)
				}
			}
			if len(missing) > 0 {
				t.Errorf("%s leaves out keys that %s (cmd/farm) reads: %s", s.file, s.goType, strings.Join(missing, ", "))
			}
			if len(undocumented) > 0 {
				t.Errorf("config/README.md does not explain: %s", strings.Join(undocumented, ", "))
			}
		})
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// sampleKeys lists the dotted key paths of a JSON file, objects included.
func sampleKeys(path string) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	keys := map[string]bool{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			keys[prefix+k] = true
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
			}
		}
	}
	walk("", v)
	return keys, nil
}

// structKeys lists the JSON key paths of the struct typeName declared in the
// Go files of dir, following struct fields into this module's packages.
// Maps, slices and basic types are leaves.
func structKeys(root, dir, typeName string) ([]string, error) {
	w := &structWalker{root: root, files: map[string][]*ast.File{}}
	var keys []string
	if err := w.walk(dir, typeName, "", &keys, 0); err != nil {
		return nil, err
	}
	sort.Strings(keys)
	return keys, nil
}

type structWalker struct {
	root  string
	fset  token.FileSet
	files map[string][]*ast.File // by folder
}

const modulePath = "github.com/latentfarm/latentfarm/"

func (w *structWalker) parsed(dir string) ([]*ast.File, error) {
	if fs, ok := w.files[dir]; ok {
		return fs, nil
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var fs []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(&w.fset, n, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		fs = append(fs, f)
	}
	w.files[dir] = fs
	return fs, nil
}

// lookup finds the declaration of typeName in dir and the file holding it.
func (w *structWalker) lookup(dir, typeName string) (*ast.TypeSpec, *ast.File, error) {
	fs, err := w.parsed(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range fs {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				if ts := spec.(*ast.TypeSpec); ts.Name.Name == typeName {
					return ts, f, nil
				}
			}
		}
	}
	return nil, nil, fmt.Errorf("type %s not found in %s", typeName, dir)
}

func (w *structWalker) walk(dir, typeName, prefix string, keys *[]string, depth int) error {
	if depth > 8 {
		return fmt.Errorf("%s%s: nesting too deep", prefix, typeName)
	}
	ts, file, err := w.lookup(dir, typeName)
	if err != nil {
		return err
	}
	st, ok := ts.Type.(*ast.StructType)
	if !ok {
		return nil // a named basic type: the caller recorded the leaf
	}
	for _, f := range st.Fields.List {
		subDir, subType := w.structType(dir, file, f.Type)
		if len(f.Names) == 0 { // embedded: encoding/json inlines its fields
			if subType != "" {
				if err := w.walk(subDir, subType, prefix, keys, depth+1); err != nil {
					return err
				}
			}
			continue
		}
		for _, n := range f.Names {
			name, skip := jsonName(n.Name, f.Tag)
			if skip {
				continue
			}
			*keys = append(*keys, prefix+name)
			if subType != "" {
				if err := w.walk(subDir, subType, prefix+name+".", keys, depth+1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// structType resolves a field type to the folder and name of a named type
// in this module, or "" for a leaf (basic types, maps, slices, other modules).
func (w *structWalker) structType(dir string, file *ast.File, expr ast.Expr) (string, string) {
	switch e := expr.(type) {
	case *ast.StarExpr:
		return w.structType(dir, file, e.X)
	case *ast.Ident:
		if !isPredeclared(e.Name) {
			if _, _, err := w.lookup(dir, e.Name); err == nil {
				return dir, e.Name
			}
		}
	case *ast.SelectorExpr:
		pkg, ok := e.X.(*ast.Ident)
		if !ok {
			return "", ""
		}
		for _, imp := range file.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			alias := filepath.Base(p)
			if imp.Name != nil {
				alias = imp.Name.Name
			}
			if alias == pkg.Name && strings.HasPrefix(p, modulePath) {
				return filepath.Join(w.root, strings.TrimPrefix(p, modulePath)), e.Sel.Name
			}
		}
	}
	return "", ""
}

func isPredeclared(name string) bool {
	switch name {
	case "bool", "string", "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16",
		"uint32", "uint64", "uintptr", "float32", "float64", "byte", "rune", "any", "error":
		return true
	}
	return false
}

// jsonName is the key encoding/json uses for field name with tag; skip for
// unexported fields and `json:"-"`.
func jsonName(name string, tag *ast.BasicLit) (string, bool) {
	if !ast.IsExported(name) {
		return "", true
	}
	if tag != nil {
		raw, _ := strconv.Unquote(tag.Value)
		key, _, _ := strings.Cut(reflect.StructTag(raw).Get("json"), ",")
		if key == "-" {
			return "", true
		}
		if key != "" {
			return key, false
		}
	}
	return name, false
}
