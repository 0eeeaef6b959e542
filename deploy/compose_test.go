package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

const (
	composeFile = "compose.yaml"
	envExample  = "farm.env.example"
)

func TestCompose_Valid(t *testing.T) {
	problems, err := checkCompose(context.Background(), composeFile, envExample)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestCompose_BrokenFileFails runs the checker on testdata/compose-broken.yaml,
// which loads but breaks every rule once, and expects each break reported.
func TestCompose_BrokenFileFails(t *testing.T) {
	problems, err := checkCompose(context.Background(), "testdata/compose-broken.yaml", envExample)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(problems, "\n")
	for _, want := range []string{
		`etcd-3: --initial-cluster`,
		`nats: no monitoring port`,
		`want 2 coordinators, found 1`,
		`node-gpu: no GPU reservation`,
		`node-cpu: environment FARM_NATS_PASSWORD holds a literal`,
		`nats: command flag --pass holds a literal`,
		`node-cpu: no healthcheck on /livez`,
		`holds the example's value of FARM_S3_SECRET_KEY`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the checker missed %q; it reported:\n%s", want, all)
		}
	}
}

// TestCompose_UnknownKeyFails: compose-go's schema refuses a misspelt key,
// as docker compose does.
func TestCompose_UnknownKeyFails(t *testing.T) {
	_, err := checkCompose(context.Background(), "testdata/compose-unknown-key.yaml", envExample)
	if err == nil || !strings.Contains(err.Error(), "healthchek") {
		t.Fatalf("want a load error naming healthchek, got %v", err)
	}
}

// TestCompose_EnvExample checks the example env file: each variable has a
// comment above it (one comment may head a group of lines), compose.yaml uses each one, each variable compose.yaml
// uses is in it, and deploy/.gitignore keeps the real farm.env out of git.
func TestCompose_EnvExample(t *testing.T) {
	lines, err := os.ReadFile(envExample)
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	prev := ""
	for i, line := range strings.Split(string(lines), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			name, _, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("%s:%d: not NAME=value: %q", envExample, i+1, line)
			}
			defined[name] = true
			if !strings.HasPrefix(prev, "#") && !strings.Contains(prev, "=") {
				t.Errorf("%s:%d: %s has no comment above it", envExample, i+1, name)
			}
		}
		prev = line
	}
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, m := range composeVarRef.FindAllStringSubmatch(stripYAMLComments(string(raw)), -1) {
		used[m[1]] = true
	}
	for name := range used {
		if !defined[name] {
			t.Errorf("compose.yaml uses ${%s}, which %s does not define", name, envExample)
		}
	}
	for name := range defined {
		if !used[name] {
			t.Errorf("%s defines %s, which compose.yaml does not use", envExample, name)
		}
	}
	ignore, err := os.ReadFile(".gitignore")
	if err != nil || !slices.Contains(strings.Fields(string(ignore)), "farm.env") {
		t.Errorf("deploy/.gitignore must list farm.env (err %v)", err)
	}
}

// TestCompose_MatchesSampleConfigs: the sample configs the services mount
// name the compose services and ports, and the healthchecks probe the ports
// the configs listen on.
func TestCompose_MatchesSampleConfigs(t *testing.T) {
	p, err := loadCompose(context.Background(), composeFile, envExample)
	if err != nil {
		t.Fatal(err)
	}
	type conf struct {
		Listen        string `json:"listen"`
		MetricsListen string `json:"metrics_listen"`
		NATS          struct {
			URL string `json:"url"`
		} `json:"nats"`
		Etcd struct {
			Endpoints []string `json:"endpoints"`
		} `json:"etcd"`
		S3 struct {
			Endpoint string `json:"endpoint"`
		} `json:"s3"`
	}
	var etcdClients []string
	for _, name := range serviceNames(p, isEtcd) {
		etcdClients = append(etcdClients, commandFlags(p.Services[name].Command)["advertise-client-urls"])
	}
	for _, s := range sampleConfigs {
		data, err := os.ReadFile(s.file)
		if err != nil {
			t.Fatal(err)
		}
		var c conf
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatal(err)
		}
		checkURLService(t, p, s.file+" nats.url", c.NATS.URL)
		checkURLService(t, p, s.file+" s3.endpoint", c.S3.Endpoint)
		got := slices.Clone(c.Etcd.Endpoints)
		sort.Strings(got)
		if !slices.Equal(got, etcdClients) {
			t.Errorf("%s etcd.endpoints %v, want every member's client URL %v", s.file, got, etcdClients)
		}
		listen := c.Listen
		if s.command == "node" {
			listen = c.MetricsListen
		}
		_, port, err := net.SplitHostPort(listen)
		if err != nil {
			t.Fatalf("%s listen %q: %v", s.file, listen, err)
		}
		for _, name := range serviceNames(p, func(svc types.ServiceConfig) bool { return farmKind(svc) == s.command }) {
			hc := p.Services[name].HealthCheck
			if hc == nil || !strings.Contains(strings.Join(hc.Test, " "), ":"+port+"/livez") {
				t.Errorf("%s: healthcheck should probe port %s (%s listens there)", name, port, s.file)
			}
		}
	}
}

// checkURLService checks that u names a compose service and a port it exposes.
func checkURLService(t *testing.T, p *types.Project, what, u string) {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil || parsed.Port() == "" {
		t.Errorf("%s %q: want scheme://service:port", what, u)
		return
	}
	svc, ok := p.Services[parsed.Hostname()]
	if !ok {
		t.Errorf("%s %q: no compose service %s", what, u, parsed.Hostname())
		return
	}
	if !slices.Contains(exposedPorts(svc), parsed.Port()) {
		t.Errorf("%s %q: service %s does not expose port %s", what, u, parsed.Hostname(), parsed.Port())
	}
}

// loadCompose loads a compose file as docker compose does: variables from
// envFile only (not from this process's environment), the schema checked
// (unknown keys fail), every profile on.
func loadCompose(ctx context.Context, composePath, envFile string) (*types.Project, error) {
	abs, err := filepath.Abs(composePath)
	if err != nil {
		return nil, err
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithEnvFiles(envFile),
		cli.WithDotEnv,
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(ctx)
}

// checkCompose loads a compose file and lists what is wrong with the
// cluster it describes; the error is for a file that does not load.
func checkCompose(ctx context.Context, composePath, envFile string) ([]string, error) {
	p, err := loadCompose(ctx, composePath, envFile)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", composePath, err)
	}
	var problems []string
	problems = append(problems, checkEtcd(p)...)
	problems = append(problems, checkNATS(p)...)
	problems = append(problems, checkFarmServices(p)...)
	raw, err := os.ReadFile(composePath)
	if err != nil {
		return nil, err
	}
	secretProblems, err := checkSecrets(raw, envFile)
	if err != nil {
		return nil, err
	}
	return append(problems, secretProblems...), nil
}

func isEtcd(s types.ServiceConfig) bool {
	return strings.HasPrefix(s.Image, "quay.io/coreos/etcd:v3.5.")
}

// farmKind is "coordinator" or "node" for the farm's own images.
func farmKind(s types.ServiceConfig) string {
	switch {
	case strings.Contains(s.Image, "/coordinator:"):
		return "coordinator"
	case strings.Contains(s.Image, "/node-"):
		return "node"
	}
	return ""
}

func serviceNames(p *types.Project, keep func(types.ServiceConfig) bool) []string {
	var names []string
	for name, s := range p.Services {
		if keep(s) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// commandFlags reads --name=value and --name value pairs (a flag followed by
// another flag, or last, is "true").
func commandFlags(cmd []string) map[string]string {
	flags := map[string]string{}
	for i := 0; i < len(cmd); i++ {
		a := cmd[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name := strings.TrimLeft(a, "-")
		if k, v, ok := strings.Cut(name, "="); ok {
			flags[k] = v
			continue
		}
		if i+1 < len(cmd) && !strings.HasPrefix(cmd[i+1], "-") {
			flags[name] = cmd[i+1]
			i++
			continue
		}
		flags[name] = "true"
	}
	return flags
}

// checkEtcd wants three members that agree on one initial cluster naming
// each of them at its own peer URL.
func checkEtcd(p *types.Project) []string {
	var problems []string
	names := serviceNames(p, isEtcd)
	if len(names) != 3 {
		problems = append(problems, fmt.Sprintf("etcd: want 3 members, found %d: %v", len(names), names))
	}
	peers := map[string]string{}
	var first, firstName, token string
	for _, name := range names {
		f := commandFlags(p.Services[name].Command)
		if f["name"] != name {
			problems = append(problems, fmt.Sprintf("%s: --name %q, want the service name %q (members reach each other by it)", name, f["name"], name))
		}
		peer := f["initial-advertise-peer-urls"]
		if u, err := url.Parse(peer); err != nil || u.Hostname() != name {
			problems = append(problems, fmt.Sprintf("%s: --initial-advertise-peer-urls %q should name the service %s", name, peer, name))
		}
		if u, err := url.Parse(f["advertise-client-urls"]); err != nil || u.Hostname() != name {
			problems = append(problems, fmt.Sprintf("%s: --advertise-client-urls %q should name the service %s", name, f["advertise-client-urls"], name))
		}
		peers[name] = peer
		if f["initial-cluster-state"] != "new" {
			problems = append(problems, fmt.Sprintf("%s: --initial-cluster-state %q, want new", name, f["initial-cluster-state"]))
		}
		if token == "" {
			token = f["initial-cluster-token"]
		} else if f["initial-cluster-token"] != token {
			problems = append(problems, fmt.Sprintf("%s: --initial-cluster-token %q differs from the other members' %q", name, f["initial-cluster-token"], token))
		}
		cluster := f["initial-cluster"]
		if first == "" {
			first, firstName = cluster, name
		} else if !sameMembers(cluster, first) {
			problems = append(problems, fmt.Sprintf("%s: --initial-cluster %q differs from %s's %q", name, cluster, firstName, first))
		}
	}
	want := map[string]string{}
	for _, m := range strings.Split(first, ",") {
		k, v, _ := strings.Cut(m, "=")
		want[k] = v
	}
	for name, peer := range peers {
		if want[name] != peer {
			problems = append(problems, fmt.Sprintf("%s: --initial-cluster %q lists it at %q, not at its peer URL %q", name, first, want[name], peer))
		}
	}
	for member := range want {
		if _, ok := peers[member]; !ok && member != "" {
			problems = append(problems, fmt.Sprintf("etcd: --initial-cluster names %q, which is no etcd service", member))
		}
	}
	return problems
}

func sameMembers(a, b string) bool {
	as, bs := strings.Split(a, ","), strings.Split(b, ",")
	sort.Strings(as)
	sort.Strings(bs)
	return slices.Equal(as, bs)
}

// checkNATS wants one NATS 2.10 server with JetStream and its monitoring
// port (what KEDA's JetStream scaler reads) exposed.
func checkNATS(p *types.Project) []string {
	names := serviceNames(p, func(s types.ServiceConfig) bool {
		return strings.HasPrefix(strings.TrimPrefix(s.Image, "docker.io/library/"), "nats:2.10")
	})
	if len(names) != 1 {
		return []string{fmt.Sprintf("nats: want one nats:2.10 service, found %v", names)}
	}
	name := names[0]
	svc := p.Services[name]
	f := commandFlags(svc.Command)
	var problems []string
	if f["js"] == "" && f["jetstream"] == "" {
		problems = append(problems, name+": JetStream is off (want -js)")
	}
	port := f["m"]
	if port == "" {
		port = f["http_port"]
	}
	if port == "" {
		return append(problems, name+": no monitoring port (want -m 8222)")
	}
	if !slices.Contains(exposedPorts(svc), port) {
		problems = append(problems, fmt.Sprintf("%s: monitoring port %s is neither exposed nor published", name, port))
	}
	return problems
}

func exposedPorts(s types.ServiceConfig) []string {
	ports := slices.Clone([]string(s.Expose))
	for _, p := range s.Ports {
		ports = append(ports, strconv.Itoa(int(p.Target)))
	}
	return ports
}

// checkFarmServices wants two coordinators with their own advertised URLs,
// CPU nodes, GPU nodes that reserve one NVIDIA GPU each, and a /livez
// healthcheck on every farm service.
func checkFarmServices(p *types.Project) []string {
	var problems []string
	coords := serviceNames(p, func(s types.ServiceConfig) bool { return farmKind(s) == "coordinator" })
	if len(coords) != 2 {
		problems = append(problems, fmt.Sprintf("coordinators: want 2 coordinators, found %d: %v", len(coords), coords))
	}
	advertised := map[string]string{}
	for _, name := range coords {
		u := p.Services[name].Environment["FARM_ADVERTISE_URL"]
		if u == nil || *u == "" {
			problems = append(problems, name+": no FARM_ADVERTISE_URL (followers refer clients to the leader by it)")
			continue
		}
		if other, ok := advertised[*u]; ok {
			problems = append(problems, fmt.Sprintf("%s: advertises %s, like %s", name, *u, other))
		}
		advertised[*u] = name
	}
	gpu := serviceNames(p, func(s types.ServiceConfig) bool { return strings.Contains(s.Image, "/node-cuda:") })
	cpu := serviceNames(p, func(s types.ServiceConfig) bool { return strings.Contains(s.Image, "/node-cpu:") })
	if len(gpu) == 0 || len(cpu) == 0 {
		problems = append(problems, fmt.Sprintf("nodes: want CPU and GPU node services, found CPU %v, GPU %v", cpu, gpu))
	}
	for _, name := range gpu {
		if !reservesOneGPU(p.Services[name]) {
			problems = append(problems, name+": no GPU reservation (deploy.resources.reservations.devices: driver nvidia, count 1, capabilities [gpu])")
		}
	}
	for _, name := range serviceNames(p, func(s types.ServiceConfig) bool { return farmKind(s) != "" }) {
		hc := p.Services[name].HealthCheck
		if hc == nil || hc.Disable || !strings.Contains(strings.Join(hc.Test, " "), "/livez") {
			problems = append(problems, name+": no healthcheck on /livez")
		}
	}
	return problems
}

func reservesOneGPU(s types.ServiceConfig) bool {
	if s.Deploy == nil || s.Deploy.Resources.Reservations == nil {
		return false
	}
	for _, d := range s.Deploy.Resources.Reservations.Devices {
		if d.Driver == "nvidia" && d.Count == 1 && slices.Contains(d.Capabilities, "gpu") {
			return true
		}
	}
	return false
}

var (
	// composeVarRef is a variable reference: ${NAME...} or $NAME.
	composeVarRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	// pureVarRef is a value that is only a variable, with no default that
	// could hold a literal: ${NAME} or ${NAME:?message}.
	pureVarRef = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}$`)
	// secretName matches environment variables that hold secrets.
	secretName = regexp.MustCompile(`(?i)(pass|secret|token|access_key|private|credential)`)
	// secretFlag matches command flags whose value is a secret.
	secretFlag = regexp.MustCompile(`(?i)^--?([a-z0-9]+[-_])*(pass|password|token|secret|secret[-_]key|access[-_]key|creds)$`)
)

// checkSecrets reads the compose file as written (before interpolation) and
// wants every secret-looking environment value and secret flag to be a bare
// variable, and none of the example env file's secret values to appear.
func checkSecrets(raw []byte, envFile string) ([]string, error) {
	var doc struct {
		Services map[string]struct {
			Environment any `yaml:"environment"`
			Command     any `yaml:"command"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	var problems []string
	names := make([]string, 0, len(doc.Services))
	for name := range doc.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		svc := doc.Services[name]
		for k, v := range envMap(svc.Environment) {
			if secretName.MatchString(k) && !pureVarRef.MatchString(v) {
				problems = append(problems, fmt.Sprintf("%s: environment %s holds a literal or a default (%q): want ${VAR} from the env file", name, k, v))
			}
		}
		cmd := commandList(svc.Command)
		for i, a := range cmd {
			flag, value, hasValue := strings.Cut(a, "=")
			if !secretFlag.MatchString(flag) {
				continue
			}
			if !hasValue && i+1 < len(cmd) {
				value = cmd[i+1]
			}
			if !pureVarRef.MatchString(value) {
				problems = append(problems, fmt.Sprintf("%s: command flag %s holds a literal or a default (%q): want ${VAR} from the env file", name, flag, value))
			}
		}
	}
	env, err := dotenv.GetEnvFromFile(nil, []string{envFile})
	if err != nil {
		return nil, err
	}
	text := stripYAMLComments(string(raw))
	for k, v := range env {
		if secretName.MatchString(k) && len(v) >= 8 && strings.Contains(text, v) {
			problems = append(problems, fmt.Sprintf("compose file holds the example's value of %s", k))
		}
	}
	return problems, nil
}

// envMap reads a service's environment, a map or a list of NAME=value.
func envMap(v any) map[string]string {
	out := map[string]string{}
	switch e := v.(type) {
	case map[string]any:
		for k, val := range e {
			out[k] = fmt.Sprint(val)
		}
	case []any:
		for _, item := range e {
			k, val, _ := strings.Cut(fmt.Sprint(item), "=")
			out[k] = val
		}
	}
	return out
}

func commandList(v any) []string {
	switch c := v.(type) {
	case string:
		return strings.Fields(c)
	case []any:
		out := make([]string, len(c))
		for i, a := range c {
			out[i] = fmt.Sprint(a)
		}
		return out
	}
	return nil
}

// stripYAMLComments drops whole-line comments, so that documentation may
// mention a variable without using it.
func stripYAMLComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}
