package coordinator

import "net/http"

// mountComfy adds ComfyUI's API to the authenticated mux.
func (c *Coordinator) mountComfy(mux *http.ServeMux) {}
