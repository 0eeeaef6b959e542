package coordinator

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// TestDashboard_MountedOnItsPathsOnly checks that the dashboard's page and
// assets need no token, and that every other path is still the API's: a 401
// without the token, its 404 with it.
func TestDashboard_MountedOnItsPathsOnly(t *testing.T) {
	f := newTestFarm(t)
	r := f.start(t, nil)
	r.waitLeading(t)
	do := func(method, path, token string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, r.c.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	for _, tc := range []struct {
		method, path, token string
		status              int
		ctype               string
	}{
		{"GET", "/", "", http.StatusOK, "text/html"},
		{"GET", "/ui/js/app.js", "", http.StatusOK, "text/javascript"},
		{"GET", "/ui/config.json", "", http.StatusOK, "application/json"},
		{"GET", "/ui/missing.js", "", http.StatusNotFound, ""},
		{"GET", "/index.html", "", http.StatusUnauthorized, "application/json"},
		{"GET", "/v1/jobs", "", http.StatusUnauthorized, "application/json"},
		{"GET", "/nope", f.token, http.StatusNotFound, "application/json"},
		{"POST", "/", f.token, http.StatusNotFound, "application/json"},
	} {
		res := do(tc.method, tc.path, tc.token)
		if res.StatusCode != tc.status || !strings.HasPrefix(res.Header.Get("Content-Type"), tc.ctype) {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, res.StatusCode, res.Header.Get("Content-Type"), tc.status, tc.ctype)
		}
		if tc.status == http.StatusNotFound && tc.ctype != "" {
			var body wire.APIError
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Error.Code != wire.CodeNotFound {
				t.Errorf("%s %s: body %+v, %v; want the API's not_found", tc.method, tc.path, body, err)
			}
		}
	}
}
