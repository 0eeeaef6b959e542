package client

import (
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// TestResolve_Precedence gives every layer a value and takes them away from
// the top: each level overrides the next (given, environment, config file,
// farm up's credentials).
func TestResolve_Precedence(t *testing.T) {
	dir := t.TempDir()
	if err := wire.WriteCredentials(dir, wire.Credentials{CoordinatorURL: "http://creds:1", Token: "creds-token"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		given, config Endpoint
		envURL        string
		envToken      string
		want          Endpoint
	}{
		{"given", Endpoint{"http://flag:1", "flag-token"}, Endpoint{"http://config:1", "config-token"}, "http://env:1", "env-token",
			Endpoint{"http://flag:1", "flag-token"}},
		{"environment", Endpoint{}, Endpoint{"http://config:1", "config-token"}, "http://env:1", "env-token",
			Endpoint{"http://env:1", "env-token"}},
		{"config", Endpoint{}, Endpoint{"http://config:1", "config-token"}, "", "", Endpoint{"http://config:1", "config-token"}},
		{"credentials", Endpoint{}, Endpoint{}, "", "", Endpoint{"http://creds:1", "creds-token"}},
		{"mixed", Endpoint{Token: "flag-token"}, Endpoint{URL: "http://config:1"}, "", "env-token",
			Endpoint{"http://config:1", "flag-token"}},
		{"token from the credentials", Endpoint{URL: "http://flag:1"}, Endpoint{}, "", "", Endpoint{"http://flag:1", "creds-token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FARM_URL", tc.envURL)
			t.Setenv("FARM_TOKEN", tc.envToken)
			got, err := Resolve(tc.given, tc.config, dir)
			if err != nil || got != tc.want {
				t.Errorf("Resolve = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	t.Setenv("FARM_URL", "")
	t.Setenv("FARM_TOKEN", "")
	if _, err := Resolve(Endpoint{}, Endpoint{}, t.TempDir()); err == nil {
		t.Fatal("no credentials anywhere, but no error")
	}
	// Given both, a data dir without credentials is no error.
	if got, err := Resolve(Endpoint{"http://flag:1", "t"}, Endpoint{}, t.TempDir()); err != nil || got.URL != "http://flag:1" {
		t.Fatalf("given both: %+v, %v", got, err)
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
