package coordinator

import "net/http"

// mountWeb adds the dashboard's pages and assets to the public mux.
func (c *Coordinator) mountWeb(mux *http.ServeMux) {}
