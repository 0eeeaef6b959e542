package client

import (
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
)

func TestResolve_Precedence(t *testing.T) {
	dir := t.TempDir()
	if err := wire.WriteCredentials(dir, wire.Credentials{CoordinatorURL: "http://file:1", Token: "file-token"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FARM_URL", "")
	t.Setenv("FARM_TOKEN", "")
	u, tok, err := Resolve("", "", dir)
	if err != nil || u != "http://file:1" || tok != "file-token" {
		t.Fatalf("file: %q %q %v", u, tok, err)
	}
	t.Setenv("FARM_TOKEN", "env-token")
	if u, tok, _ = Resolve("", "", dir); u != "http://file:1" || tok != "env-token" {
		t.Fatalf("env token: %q %q", u, tok)
	}
	if u, tok, _ = Resolve("http://flag:2", "flag-token", dir); u != "http://flag:2" || tok != "flag-token" {
		t.Fatalf("flags: %q %q", u, tok)
	}
	if _, _, err := Resolve("", "", t.TempDir()); err == nil {
		t.Fatal("no credentials anywhere, but no error")
	}
}

func TestNew_Validates(t *testing.T) {
	for _, o := range []Options{{}, {URL: "ftp://x", Token: "t"}, {URL: "http://x:1"}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	if _, err := New(Options{URL: "http://127.0.0.1:1/", Token: "t"}); err != nil {
		t.Fatal(err)
	}
}
