package web

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/scheduler"
)

func get(t *testing.T, h http.Handler, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandler_Paths(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		path, status, ctype string
	}{
		{"/", "200 OK", "text/html; charset=utf-8"},
		{"/ui/style.css", "200 OK", "text/css; charset=utf-8"},
		{"/ui/js/app.js", "200 OK", "text/javascript; charset=utf-8"},
		{"/ui/icon.svg", "200 OK", "image/svg+xml"},
		{"/ui/config.json", "200 OK", "application/json"},
		{"/ui/", "404 Not Found", ""},
		{"/ui/js", "404 Not Found", ""},
		{"/ui/nope.js", "404 Not Found", ""},
		{"/ui/../web.go", "404 Not Found", ""},
		{"/v1/jobs", "404 Not Found", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res := get(t, h, tc.path)
			if res.Status != tc.status {
				t.Fatalf("status %s, want %s", res.Status, tc.status)
			}
			if got := res.Header.Get("Content-Type"); tc.ctype != "" && got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
		})
	}
}

func TestHandler_IndexHeaders(t *testing.T) {
	res := get(t, Handler(), "/")
	if csp := res.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self';") {
		t.Errorf("Content-Security-Policy %q does not keep the page to its origin", csp)
	}
	if res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no X-Content-Type-Options: nosniff")
	}
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if again := get(t, Handler(), "/", "If-None-Match", etag); again.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: %s, want 304", again.Status)
	}
}

func TestHandler_ConfigFromScheduler(t *testing.T) {
	var cfg Config
	if err := json.Unmarshal([]byte(body(t, get(t, Handler(), ConfigPath))), &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Samplers, scheduler.Names()) || !slices.Equal(cfg.Schedules, scheduler.Schedules()) {
		t.Errorf("samplers %v, schedules %v; want the scheduler package's %v, %v",
			cfg.Samplers, cfg.Schedules, scheduler.Names(), scheduler.Schedules())
	}
	d := cfg.Defaults
	if d.Sampler != scheduler.DefaultSampler || d.Steps != scheduler.DefaultSteps || d.CFGScale != scheduler.DefaultCFGScale ||
		d.Width != scheduler.DefaultSize || d.Height != scheduler.DefaultSize {
		t.Errorf("defaults %+v are not the scheduler package's", d)
	}
}

// TestAssets_SelfContained checks that every asset the page and scripts
// name is embedded, that nothing is loaded from another origin, and that no
// script keeps its own list of sampler names.
func TestAssets_SelfContained(t *testing.T) {
	h := Handler()
	refs := regexp.MustCompile(`(?:src|href)="(/ui/[^"]+)"|from '\./([^']+)'`)
	external := regexp.MustCompile(`(?i)https?://[^\s"')]+`)
	err := fs.WalkDir(files, "ui", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(files, name)
		if err != nil {
			return err
		}
		text := string(data)
		for _, u := range external.FindAllString(text, -1) {
			if u != "http://www.w3.org/2000/svg" { // a namespace, not a load
				t.Errorf("%s names another origin: %s", name, u)
			}
		}
		for _, m := range refs.FindAllStringSubmatch(text, -1) {
			path := m[1]
			if path == "" {
				path = "/ui/js/" + m[2]
			}
			if res := get(t, h, path); res.StatusCode != http.StatusOK {
				t.Errorf("%s refers to %s: %s", name, path, res.Status)
			}
		}
		if strings.HasSuffix(name, ".js") {
			for _, s := range scheduler.Names() {
				if strings.Contains(text, "'"+s+"'") {
					t.Errorf("%s names sampler %q: the list belongs to /ui/config.json", name, s)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
