package client

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/latentfarm/latentfarm/shared/connect"
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
		{"given", Endpoint{URL: "http://flag:1", Token: "flag-token"}, Endpoint{URL: "http://config:1", Token: "config-token"}, "http://env:1", "env-token",
			Endpoint{URL: "http://flag:1", Token: "flag-token"}},
		{"environment", Endpoint{}, Endpoint{URL: "http://config:1", Token: "config-token"}, "http://env:1", "env-token",
			Endpoint{URL: "http://env:1", Token: "env-token"}},
		{"config", Endpoint{}, Endpoint{URL: "http://config:1", Token: "config-token"}, "", "", Endpoint{URL: "http://config:1", Token: "config-token"}},
		{"credentials", Endpoint{}, Endpoint{}, "", "", Endpoint{URL: "http://creds:1", Token: "creds-token"}},
		{"mixed", Endpoint{Token: "flag-token"}, Endpoint{URL: "http://config:1"}, "", "env-token",
			Endpoint{URL: "http://config:1", Token: "flag-token"}},
		{"token from the credentials", Endpoint{URL: "http://flag:1"}, Endpoint{}, "", "", Endpoint{URL: "http://flag:1", Token: "creds-token"}},
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
	if got, err := Resolve(Endpoint{URL: "http://flag:1", Token: "t"}, Endpoint{}, t.TempDir()); err != nil || got.URL != "http://flag:1" {
		t.Fatalf("given both: %+v, %v", got, err)
	}
}

// TestResolve_CarriesTheFarmsCA resolves a TLS coordinator from farm up's
// credentials, as a library user does with no flag: the endpoint carries
// the credentials' CA, and a client made of it verifies the coordinator,
// which one without the CA cannot. A CA file given joins it.
func TestResolve_CarriesTheFarmsCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"leader": true, "leader_url": "x"}`))
	}))
	defer srv.Close()
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	dir := t.TempDir()
	if err := wire.WriteCredentials(dir, wire.Credentials{CoordinatorURL: srv.URL, Token: "creds-token", CA: ca}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"FARM_URL", "FARM_TOKEN", "FARM_CA", "FARM_CERT", "FARM_KEY"} {
		t.Setenv(k, "")
	}
	ep, err := Resolve(Endpoint{}, Endpoint{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if ep.URL != srv.URL || ep.Token != "creds-token" || ep.TLS.CA != ca {
		t.Fatalf("Resolve = %+v, want the credentials' url, token and CA", ep)
	}
	c, err := New(ep.Options())
	if err != nil {
		t.Fatal(err)
	}
	if leader, _, err := c.Health(context.Background()); err != nil || !leader {
		t.Errorf("health with the farm's CA: %v, %v", leader, err)
	}
	bare := ep
	bare.TLS = connect.TLSFiles{}
	c, err = New(bare.Options())
	if err != nil {
		t.Fatal(err)
	}
	var unknown x509.UnknownAuthorityError
	if _, _, err := c.Health(context.Background()); !errors.As(err, &unknown) {
		t.Errorf("health without the CA: %v, want an unknown authority", err)
	}

	// Given a URL and token, the credentials still lend their CA, and a CA
	// file from the environment joins it.
	t.Setenv("FARM_CA", "/etc/farm/ca.pem")
	ep, err = Resolve(Endpoint{URL: "https://flag:1", Token: "t"}, Endpoint{}, dir)
	if err != nil || ep.TLS.CA != ca || ep.TLS.CAFile != "/etc/farm/ca.pem" {
		t.Errorf("Resolve = %+v, %v; want the credentials' CA and the CA file", ep.TLS, err)
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
