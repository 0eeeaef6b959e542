package coordinator

import (
	"net/http"

	"github.com/latentfarm/latentfarm/coordinator/web"
)

// mountWeb adds the dashboard's page and assets to the public mux. Only
// their exact paths: every other path stays the API's, so an unknown one
// still gets its 404. The page needs no token; what it shows comes from
// /v1, with the session cookie.
func (c *Coordinator) mountWeb(mux *http.ServeMux) {
	h := web.Handler()
	mux.Handle("GET "+web.IndexPath+"{$}", h)
	mux.Handle("GET "+web.AssetsPath, h)
}
