package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/pipeline"
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
