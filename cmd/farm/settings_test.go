package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/coordinator"
	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/spf13/pflag"
)

// layers are the sources of settings of one run, highest first but the
// default: what each may set is given by the test.
type layers struct {
	flags  []string
	env    map[string]string
	config string // file contents; "" for no --config
	creds  *wire.Credentials
}

// farmEnv are the environment variables the tests below set; each run
// starts with all of them empty, so the machine's own do not leak in.
var farmEnv = []string{"FARM_URL", "FARM_TOKEN", "FARM_CONFIG", "FARM_NODE_CONFIG", "FARM_COORDINATOR_CONFIG",
	"FARM_DATA", "FARM_CREDENTIALS", "FARM_NATS_URL", "FARM_NATS_USER", "FARM_ETCD_ENDPOINTS", "FARM_S3_BUCKET",
	"FARM_LEASE_TTL", "FARM_VRAM", "FARM_VRAM_GIB", "FARM_PRICE_PER_HOUR", "FARM_CURRENCY", "FARM_ACK_WAIT",
	"FARM_NODE_LABELS", "FARM_BACKEND", "FARM_DEVICE", "FARM_MAX_LOADED_MODELS", "FARM_CACHE"}

// setLayers sets up the environment, config file and data dir of l and
// returns the flags to parse.
func setLayers(t *testing.T, l layers) []string {
	t.Helper()
	for _, name := range farmEnv {
		t.Setenv(name, "")
	}
	dir := t.TempDir()
	t.Setenv("FARM_DATA", dir) // no credentials: an empty layer
	if l.creds != nil {
		if err := wire.WriteCredentials(dir, *l.creds); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range l.env {
		t.Setenv(k, v)
	}
	args := append([]string(nil), l.flags...)
	if l.config != "" {
		path := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, []byte(l.config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	return args
}

func nodeOptions(t *testing.T, l layers) (node.Options, error) {
	t.Helper()
	args := setLayers(t, l)
	c, f := newNodeCmdFlags()
	if err := c.ParseFlags(args); err != nil {
		return node.Options{}, flagError(c, args, err)
	}
	return f.options()
}

func coordinatorOptions(t *testing.T, l layers) (coordinator.Options, error) {
	t.Helper()
	args := setLayers(t, l)
	fs := pflag.NewFlagSet("coordinator", pflag.ContinueOnError)
	var f coordFlags
	f.register(newSettings(fs))
	if err := fs.Parse(args); err != nil {
		return coordinator.Options{}, err
	}
	return f.options()
}

func apiEndpoint(t *testing.T, l layers) (connection, error) {
	t.Helper()
	args := setLayers(t, l)
	fs := pflag.NewFlagSet("jobs", pflag.ContinueOnError)
	api := addAPIFlags(newSettings(fs))
	if err := fs.Parse(args); err != nil {
		return connection{}, err
	}
	return api.endpoint()
}

// every sets each setting the tests follow at every level.
var every = layers{
	flags: []string{"--nats-url", "nats://flag:1", "--lease-ttl", "1s", "--vram", "1GiB", "--token", "flag-token",
		"--url", "http://flag:1", "--ack-wait", "1s", "--labels", "from=flag"},
	env: map[string]string{"FARM_NATS_URL": "nats://env:2", "FARM_LEASE_TTL": "2s", "FARM_VRAM": "2GiB", "FARM_TOKEN": "env-token",
		"FARM_URL": "http://env:2", "FARM_ACK_WAIT": "2s", "FARM_NODE_LABELS": "from=env"},
	config: "nats: {url: nats://config:3}\nlease_ttl: 3s\nvram_gib: 3\ntoken: config-token\nurl: http://config:3\nack_wait: 3s\n" +
		"labels: {from: config}\n",
	creds: &wire.Credentials{NATSURL: "nats://creds:4", Token: "creds-token", CoordinatorURL: "http://creds:4"},
}

// without takes the levels above one away from every.
func without(top int) layers {
	l := every
	if top > 0 {
		l.flags = nil
	}
	if top > 1 {
		l.env = nil
	}
	if top > 2 {
		l.config = ""
	}
	if top > 3 {
		l.creds = nil
	}
	return l
}

// TestSettings_Precedence takes the levels away one by one from the top:
// flags, then the environment, then the --config file, then farm up's
// credentials, then the defaults. Each level overrides the next.
func TestSettings_Precedence(t *testing.T) {
	// The config file's keys are each command's own; the coordinator's and
	// the node's files take no url, the client's no nats or lease_ttl.
	for _, tc := range []struct {
		level               string
		natsURL, token, url string
		leaseTTL, ackWait   time.Duration
		vram                int64
		label               string
	}{
		{"flags", "nats://flag:1", "flag-token", "http://flag:1", time.Second, time.Second, 1 << 30, "flag"},
		{"environment", "nats://env:2", "env-token", "http://env:2", 2 * time.Second, 2 * time.Second, 2 << 30, "env"},
		{"config", "nats://config:3", "config-token", "http://config:3", 3 * time.Second, 3 * time.Second, 3 << 30, "config"},
		{"credentials", "nats://creds:4", "creds-token", "http://creds:4", 0, 0, 0, ""},
		{"defaults", "", "", "", 0, 0, 0, ""},
	} {
		top := map[string]int{"flags": 0, "environment": 1, "config": 2, "credentials": 3, "defaults": 4}[tc.level]
		t.Run(tc.level, func(t *testing.T) {
			l := without(top)
			nodeLayers := l
			nodeLayers.flags = dropFlags(l.flags, "--token", "--url", "--ack-wait")
			nodeLayers.config = dropKeys(l.config, "token", "url", "ack_wait")
			o, err := nodeOptions(t, nodeLayers)
			if err != nil {
				t.Fatal(err)
			}
			if o.NATS.URL != tc.natsURL || o.LeaseTTL != tc.leaseTTL || o.VRAMBytes != tc.vram || o.Labels["from"] != tc.label {
				t.Errorf("node: nats %q, lease %v, vram %d, labels %v; want %q, %v, %d, from=%s",
					o.NATS.URL, o.LeaseTTL, o.VRAMBytes, o.Labels, tc.natsURL, tc.leaseTTL, tc.vram, tc.label)
			}

			coordLayers := l
			coordLayers.flags = dropFlags(l.flags, "--url", "--lease-ttl", "--vram", "--labels")
			coordLayers.config = dropKeys(l.config, "url", "lease_ttl", "vram_gib", "labels")
			co, err := coordinatorOptions(t, coordLayers)
			if err != nil {
				t.Fatal(err)
			}
			if co.NATS.URL != tc.natsURL || co.Token != tc.token || co.Streams.AckWait != tc.ackWait {
				t.Errorf("coordinator: nats %q, token %q, ack wait %v; want %q, %q, %v",
					co.NATS.URL, co.Token, co.Streams.AckWait, tc.natsURL, tc.token, tc.ackWait)
			}

			apiLayers := l
			apiLayers.flags = dropFlags(l.flags, "--nats-url", "--lease-ttl", "--vram", "--ack-wait", "--labels")
			apiLayers.config = dropKeys(l.config, "nats", "lease_ttl", "vram_gib", "ack_wait", "labels")
			ep, err := apiEndpoint(t, apiLayers)
			if tc.level == "defaults" {
				if err == nil || !strings.Contains(err.Error(), "no coordinator: give --url and --token") {
					t.Errorf("client without any: %v", err)
				}
				return
			}
			if err != nil || ep.URL != tc.url || ep.Token != tc.token {
				t.Errorf("client: %q, %q, %v; want %q, %q", ep.URL, ep.Token, err, tc.url, tc.token)
			}
			// client.Resolve, the library's form, follows the same rule.
			given := client.Endpoint{URL: flagValue(apiLayers.flags, "--url"), Token: flagValue(apiLayers.flags, "--token")}
			var config client.Endpoint
			if apiLayers.config != "" {
				config = client.Endpoint{URL: "http://config:3", Token: "config-token"}
			}
			setLayers(t, apiLayers)
			got, err := client.Resolve(given, config, os.Getenv("FARM_DATA"))
			if err != nil || got.URL != ep.URL || got.Token != ep.Token {
				t.Errorf("client.Resolve = %+v, %v; the CLI %q, %q", got, err, ep.URL, ep.Token)
			}
		})
	}
}

// TestSettings_Precedence_PerField: the layers mix, field by field.
func TestSettings_Precedence_PerField(t *testing.T) {
	o, err := nodeOptions(t, layers{
		flags:  []string{"--nats-user", "flag-user"},
		env:    map[string]string{"FARM_NATS_URL": "nats://env:2"},
		config: "s3: {bucket: config-bucket}\nnats: {url: nats://config:3, user: config-user}\n",
		creds:  &wire.Credentials{NATSURL: "nats://creds:4", S3Bucket: "creds-bucket", S3Endpoint: "creds:9000", EtcdEndpoints: []string{"http://creds:2379"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.NATS.User != "flag-user" || o.NATS.URL != "nats://env:2" || o.S3.Bucket != "config-bucket" || o.S3.Endpoint != "creds:9000" ||
		len(o.Etcd.Endpoints) != 1 || o.Etcd.Endpoints[0] != "http://creds:2379" {
		t.Errorf("nats %+v, s3 %+v, etcd %+v", o.NATS, o.S3, o.Etcd)
	}
	// A flag given as false beats true below it.
	o, err = nodeOptions(t, layers{flags: []string{"--s3-tls=false"}, creds: &wire.Credentials{S3UseTLS: true}})
	if err != nil || o.S3.UseTLS {
		t.Errorf("--s3-tls=false over credentials' true: %v, %v", o.S3.UseTLS, err)
	}
	// A data dir named with --data must hold credentials.
	if _, err := nodeOptions(t, layers{flags: []string{"--data", t.TempDir()}}); err == nil || !strings.Contains(err.Error(), "credentials.json") {
		t.Errorf("--data without credentials: %v", err)
	}
}

func TestSettings_TypedValues(t *testing.T) {
	for _, tc := range []struct {
		name     string
		l        layers
		vram     int64
		lease    time.Duration
		price    float64
		currency string
	}{
		{"sizes with units", layers{flags: []string{"--vram", "512MiB"}}, 512 << 20, 0, 0, ""},
		{"decimal units", layers{flags: []string{"--vram=1.5GB"}}, 1_500_000_000, 0, 0, ""},
		{"plain bytes", layers{flags: []string{"--vram", "1073741824"}}, 1 << 30, 0, 0, ""},
		{"vram-gib plain", layers{flags: []string{"--vram-gib", "7.5"}}, 15 << 29, 0, 0, ""},
		{"vram-gib with a unit", layers{flags: []string{"--vram-gib", "512MiB"}}, 512 << 20, 0, 0, ""},
		{"environment", layers{env: map[string]string{"FARM_VRAM_GIB": "8", "FARM_LEASE_TTL": "1m30s", "FARM_PRICE_PER_HOUR": "1.10"}},
			8 << 30, 90 * time.Second, 1.10, ""},
		{"config", layers{config: "vram_gib: 12\nlease_ttl: 15s\nprice_per_hour: 0.12\ncurrency: EUR\n"}, 12 << 30, 15 * time.Second, 0.12, "EUR"},
		{"config sizes as strings", layers{config: "vram_gib: 6GiB\n"}, 6 << 30, 0, 0, ""},
		{"config as JSON", layers{config: `{"vram_gib": 2, "drain_timeout": "2m", "lease_ttl": "5s"}`}, 2 << 30, 5 * time.Second, 0, ""},
		{"price and currency flags", layers{flags: []string{"--price-per-hour", "2.5", "--currency", "GBP"}, config: "currency: EUR\n"}, 0, 0, 2.5, "GBP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := nodeOptions(t, tc.l)
			if err != nil {
				t.Fatal(err)
			}
			if o.VRAMBytes != tc.vram || o.LeaseTTL != tc.lease || o.PricePerHour != tc.price || o.Currency != tc.currency {
				t.Errorf("vram %d, lease %v, price %g %s; want %d, %v, %g %s", o.VRAMBytes, o.LeaseTTL, o.PricePerHour, o.Currency,
					tc.vram, tc.lease, tc.price, tc.currency)
			}
		})
	}
}

// TestSettings_TypedErrors: bad values are refused with the flag, variable
// or config key named; flags and variables are usage errors.
func TestSettings_TypedErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		l     layers
		want  string
		usage bool
	}{
		{"duration", layers{flags: []string{"--lease-ttl", "soon"}},
			`invalid argument "soon" for "--lease-ttl" flag: want a duration of 0 or more, such as 30s, 2m or 1h30m`, true},
		{"negative duration", layers{flags: []string{"--drain-timeout", "-1s"}}, `invalid argument "-1s" for "--drain-timeout" flag`, true},
		{"size unit", layers{flags: []string{"--vram", "8GiG"}},
			`invalid argument "8GiG" for "--vram" flag: unknown unit "GiG": want a size such as 8GiB, 512MiB or 1.5GB, or a number of bytes`, true},
		{"size number", layers{flags: []string{"--vram", "lots"}}, `invalid argument "lots" for "--vram" flag: unknown unit "lots"`, true},
		{"negative size", layers{flags: []string{"--vram-gib", "-1"}},
			`invalid argument "-1" for "--vram-gib" flag: want a number of GiB such as 8 or 7.5, or a size such as 512MiB`, true},
		{"price", layers{flags: []string{"--price-per-hour", "cheap"}},
			`invalid argument "cheap" for "--price-per-hour" flag: want an amount of 0 or more, such as 1.10`, true},
		{"labels", layers{flags: []string{"--labels", "pool"}}, `invalid argument "pool" for "--labels" flag: want k=v,k=v`, true},
		{"environment", layers{env: map[string]string{"FARM_LEASE_TTL": "10"}},
			`$FARM_LEASE_TTL "10" (it stands for --lease-ttl): want a duration`, true},
		{"environment size", layers{env: map[string]string{"FARM_VRAM_GIB": "big"}}, `$FARM_VRAM_GIB "big" (it stands for --vram-gib)`, true},
		{"config duration", layers{config: "lease_ttl: 10\n"}, `lease_ttl: 10: want a duration of 0 or more, such as 30s, 2m or 1h30m, in quotes`, false},
		{"config size", layers{config: "vram_gib: 12XB\n"}, `vram_gib: "12XB": unknown unit "XB"`, false},
		{"config price", layers{config: "price_per_hour: -1\n"}, `price_per_hour: -1: want an amount of 0 or more`, false},
		{"config unknown key", layers{config: "natz: {url: x}\n"}, `json: unknown field "natz"`, false},
		{"config unknown nested key", layers{config: "nats: {urll: x}\n"}, `nats: json: unknown field "urll"`, false},
		{"max loaded models", layers{flags: []string{"--max-loaded-models", "0"}}, "--max-loaded-models 0: want 1 or more", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := nodeOptions(t, tc.l)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if tc.l.config != "" && !strings.Contains(err.Error(), "config ") {
				t.Errorf("error %q does not name the config file", err)
			}
			var ue *usageError
			if errors.As(err, &ue) != tc.usage {
				t.Errorf("usage error %v, want %v", !tc.usage, tc.usage)
			}
		})
	}
}

// dropFlags removes the named flags and their values from args.
func dropFlags(args []string, names ...string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if slices.Contains(names, args[i]) {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// dropKeys removes the lines of a flat YAML config that set the keys.
func dropKeys(config string, keys ...string) string {
	var out []string
	for _, line := range strings.Split(config, "\n") {
		k, _, _ := strings.Cut(line, ":")
		if !slices.Contains(keys, k) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
