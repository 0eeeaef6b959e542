package main

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"sigs.k8s.io/yaml"
)

func TestVersion(t *testing.T) {
	code, out := captureStdout(t, "version")
	if code != 0 || !strings.HasPrefix(out, pipeline.Version()+"\n") || !strings.Contains(out, "github.com/latentfarm/latentfarm") {
		t.Errorf("farm version: exit %d:\n%s", code, out)
	}
	code, out = captureStdout(t, "version", "--json")
	var b buildInfo
	if err := json.Unmarshal([]byte(out), &b); err != nil || code != 0 {
		t.Fatalf("farm version --json: exit %d, %v:\n%s", code, err, out)
	}
	want := buildInfo{Version: pipeline.Version(), Module: "github.com/latentfarm/latentfarm", ModuleVersion: b.ModuleVersion,
		Revision: b.Revision, Time: b.Time, Modified: b.Modified, Tags: b.Tags, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if b != want || b.ModuleVersion == "" {
		t.Errorf("farm version --json = %+v, want %+v", b, want)
	}
	quietStderr(t)
	if code := run([]string{"version", "extra"}); code != 2 {
		t.Errorf("farm version extra: exit code %d, want 2", code)
	}
}

// TestVersion_Output prints farm version in each -o format, and with the
// old --json, and reads the records back.
func TestVersion_Output(t *testing.T) {
	quietStderr(t) // --json's deprecation warning
	want := readBuildInfo()
	fromYAML := func(b []byte, v any) error { return yaml.UnmarshalStrict(b, v) }
	for _, tc := range []struct {
		args   []string
		decode func([]byte, any) error
	}{
		{[]string{"-o", "json"}, json.Unmarshal},
		{[]string{"--output=json"}, json.Unmarshal},
		{[]string{"--json"}, json.Unmarshal},
		{[]string{"-o", "yaml"}, fromYAML},
		{[]string{"-oyaml"}, fromYAML},
	} {
		code, out := captureStdout(t, append([]string{"version"}, tc.args...)...)
		var got buildInfo
		if err := tc.decode([]byte(out), &got); err != nil || code != 0 {
			t.Fatalf("farm version %s: exit %d, %v:\n%s", strings.Join(tc.args, " "), code, err, out)
		}
		if got != want {
			t.Errorf("farm version %s = %+v, want %+v", strings.Join(tc.args, " "), got, want)
		}
	}
	code, table := captureStdout(t, "version", "-o", "table")
	_, plain := captureStdout(t, "version")
	if code != 0 || table != plain || !strings.Contains(table, "  go  ") {
		t.Errorf("farm version -o table: exit %d:\n%s\nwant the default view:\n%s", code, table, plain)
	}
	err := execute(context.Background(), "version", "-o", "xml")
	if err == nil || !strings.Contains(err.Error(), `invalid argument "xml" for "-o, --output" flag: want table, json or yaml`) {
		t.Errorf("farm version -o xml: %v", err)
	}
}
