// Package web is the farm's dashboard: one page, its scripts and styles,
// embedded in the binary, and the settings its submit form offers. The page
// reads and changes everything through the coordinator's /v1 API from the
// browser, logged in with the session cookie.
//
// It serves static files only: it must never hold a token or job data,
// never call the coordinator (nor import it), and never load anything from
// another origin.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/shared/wire"
)

//go:embed ui
var files embed.FS

// Paths the dashboard serves; mount both on a mux that needs no token.
const (
	IndexPath  = "/"
	AssetsPath = "/ui/"
	ConfigPath = AssetsPath + "config.json"
)

// contentPolicy keeps the page to its own origin: no inline script or
// style, no CDN, no framing by other sites.
const contentPolicy = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Config is what the submit form offers and starts from (GET /ui/config.json).
// The engine's scheduler package and the wire limits own every value, so
// the page never keeps a second list.
type Config struct {
	Samplers   []string        `json:"samplers"`
	Schedules  []string        `json:"schedules"`
	Priorities []wire.Priority `json:"priorities"`
	Defaults   Defaults        `json:"defaults"`
	Limits     Limits          `json:"limits"`
}

// Defaults are a job spec's values when a field is left out.
type Defaults struct {
	Sampler  string        `json:"sampler"`
	Schedule string        `json:"schedule"`
	Priority wire.Priority `json:"priority"`
	Steps    int           `json:"steps"`
	CFGScale float64       `json:"cfg_scale"`
	Width    int           `json:"width"`
	Height   int           `json:"height"`
}

// Limits bound the form's numbers as the coordinator's validation does.
type Limits struct {
	MinSize   int     `json:"min_size"`
	MaxSize   int     `json:"max_size"`
	SizeStep  int     `json:"size_step"`
	MaxSteps  int     `json:"max_steps"`
	MaxCFG    float64 `json:"max_cfg_scale"`
	MaxFrames int     `json:"max_frames"`
}

// FormConfig is the Config of this build.
func FormConfig() Config {
	return Config{
		Samplers:   scheduler.Names(),
		Schedules:  scheduler.Schedules(),
		Priorities: wire.Priorities,
		Defaults: Defaults{
			Sampler: scheduler.DefaultSampler, Schedule: scheduler.DefaultSchedule, Priority: wire.PriorityNormal,
			Steps: wire.DefaultSteps, CFGScale: wire.DefaultCFGScale, Width: wire.DefaultWidth, Height: wire.DefaultHeight,
		},
		Limits: Limits{MinSize: wire.MinSize, MaxSize: wire.MaxSize, SizeStep: 8, MaxSteps: wire.MaxSteps,
			MaxCFG: wire.MaxCFGScale, MaxFrames: wire.MaxFrames},
	}
}

// Handler serves the page at IndexPath, the embedded assets under
// AssetsPath and FormConfig at ConfigPath; any other path is 404.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == ConfigPath {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-cache")
			_ = json.NewEncoder(w).Encode(FormConfig())
			return
		}
		var name string // stays empty, which no file has, off the two paths
		switch {
		case p == IndexPath:
			name = "ui/index.html"
		case strings.HasPrefix(p, AssetsPath):
			name = "ui/" + strings.TrimPrefix(p, AssetsPath)
		}
		body, err := fs.ReadFile(files, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		sum := sha256.Sum256(body)
		h := w.Header()
		h.Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
		// Revalidate every time: a new binary must never run with the old
		// script; the ETag makes an unchanged asset a 304.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", contentPolicy)
		h.Set("Referrer-Policy", "same-origin")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	})
}
