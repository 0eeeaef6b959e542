package coordinator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// maxBody bounds a request body (a spec is at most wire.MaxSpecBytes).
const maxBody = 2 * wire.MaxSpecBytes

// routes builds the API:
//
//	POST /v1/jobs                     submit a JobSpec      -> 201 SubmitResponse
//	GET  /v1/jobs[?state=&limit=]     list jobs             -> JobList
//	GET  /v1/jobs/{id}[?tasks=all|none] one job, with tasks and why they wait -> JobStatus
//	GET  /v1/jobs/{id}/events         progress as server-sent events (JobEvent)
//	POST /v1/jobs/{id}/cancel         cancel                -> JobStatus
//	DELETE /v1/jobs/{id}              delete a finished job's objects and record -> DeleteResponse
//	GET  /v1/jobs/{id}/files[?from=&to=] presigned URLs     -> FileList
//	GET  /v1/jobs/{id}/manifest[?limit=N]       the manifest, proxied
//	GET  /v1/jobs/{id}/frames/{index} one frame PNG, proxied
//	GET  /v1/jobs/{id}/outputs/{name} an assembled file (animation.gif), proxied
//	PUT  /v1/inputs/{sha256}          store an image input  -> InputRef
//	GET  /v1/nodes                    node entries          -> NodeList
//	GET  /healthz                     leadership
//	POST /v1/session {"token"}        dashboard login: sets the session cookie (no token needed)
//	DELETE /v1/session                log out
//	ComfyUI's API (/prompt, /history, /view, /ws, ...): see comfy.go
//	GET  /, /ui/...                   the web dashboard (no token needed): see web.go
//	GET  /livez, /readyz, /metrics    liveness, readiness (NATS, etcd, S3, leader), Prometheus
//
// Every other path needs "Authorization: Bearer <token>" or the session
// cookie (session.go).
func (c *Coordinator) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs", c.leaderOnly(c.handleSubmit))
	mux.HandleFunc("GET /v1/jobs", c.leaderOnly(c.handleList))
	mux.HandleFunc("GET /v1/jobs/{id}", c.leaderOnly(c.handleJob))
	mux.HandleFunc("GET /v1/jobs/{id}/events", c.leaderOnly(c.handleEvents))
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", c.leaderOnly(c.handleCancel))
	mux.HandleFunc("DELETE /v1/jobs/{id}", c.leaderOnly(c.handleDelete))
	mux.HandleFunc("GET /v1/jobs/{id}/files", c.leaderOnly(c.handleFiles))
	mux.HandleFunc("GET /v1/jobs/{id}/manifest", c.leaderOnly(c.handleManifest))
	mux.HandleFunc("GET /v1/jobs/{id}/frames/{index}", c.leaderOnly(c.handleFrame))
	mux.HandleFunc("GET /v1/jobs/{id}/outputs/{name}", c.leaderOnly(c.handleOutput))
	mux.HandleFunc("PUT /v1/inputs/{sum}", c.leaderOnly(c.handleInput))
	mux.HandleFunc("GET /v1/nodes", c.handleNodes)
	mux.HandleFunc("GET /healthz", c.handleHealth)
	mux.HandleFunc("DELETE /v1/session", c.handleLogout)
	c.mountComfy(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "no such path: "+r.Method+" "+r.URL.Path, nil)
	})
	return c.public(c.auth(mux))
}

// leaderOnly answers 503 not_leader on a follower, naming the leader.
func (c *Coordinator) leaderOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		leading, leader := c.leading, c.leaderURL
		c.mu.Unlock()
		if !leading {
			writeJSON(w, http.StatusServiceUnavailable, wire.APIError{Error: wire.APIErrorBody{
				Code: wire.CodeNotLeader, Message: "this coordinator is not the leader", Leader: leader}})
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code wire.Code, msg string, fields wire.FieldErrors) {
	writeJSON(w, status, wire.APIError{Error: wire.APIErrorBody{Code: code, Message: msg, Fields: fields}})
}

// writeErr maps an operation's error to a response.
func (c *Coordinator) writeErr(w http.ResponseWriter, err error) {
	if fe, ok := wire.AsFieldErrors(err); ok {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidJob, fe.Error(), fe)
		return
	}
	switch {
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, wire.CodeNotFound, err.Error(), nil)
	case errors.Is(err, errConflict):
		writeError(w, http.StatusConflict, wire.CodeConflict, err.Error(), nil)
	case errors.Is(err, errNotLeader):
		c.mu.Lock()
		leader := c.leaderURL
		c.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, wire.APIError{Error: wire.APIErrorBody{
			Code: wire.CodeNotLeader, Message: err.Error(), Leader: leader}})
	default:
		c.log.Error("request failed", "error", err)
		writeError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, err.Error(), nil)
	}
}

func (c *Coordinator) handleSubmit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, wire.CodeTooLarge, fmt.Sprintf("body over %d bytes", maxBody), nil)
		return
	}
	spec, err := wire.ParseJobSpec(body)
	if _, fields := wire.AsFieldErrors(err); fields {
		c.writeErr(w, err) // bytes that are not UTF-8: invalid_job naming the field
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, err.Error(), nil)
		return
	}
	st, err := c.submit(r.Context(), spec)
	if err != nil {
		c.writeErr(w, err)
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+st.ID)
	writeJSON(w, http.StatusCreated, wire.SubmitResponse{Job: st})
}

func (c *Coordinator) handleList(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "limit must be a positive integer", nil)
			return
		}
		limit = n
	}
	c.mu.Lock()
	list := make([]wire.JobStatus, 0, len(c.jobs))
	for _, j := range c.jobs {
		if state == "" || j.rec.State == state {
			list = append(list, c.status(j, false))
		}
	}
	c.mu.Unlock()
	sort.Slice(list, func(a, b int) bool {
		if !list[a].CreatedAt.Equal(list[b].CreatedAt) {
			return list[a].CreatedAt.After(list[b].CreatedAt)
		}
		return list[a].ID > list[b].ID
	})
	if len(list) > limit {
		list = list[:limit]
	}
	writeJSON(w, http.StatusOK, wire.JobList{Jobs: list})
}

func (c *Coordinator) handleJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	mode := r.URL.Query().Get("tasks")
	c.mu.Lock()
	j, ok := c.jobs[id]
	if !ok {
		c.mu.Unlock()
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "no job "+id, nil)
		return
	}
	st := c.status(j, true)
	active := j.active()
	if active && mode != "none" {
		st.Tasks = c.taskStatuses(j, mode == "all")
	}
	c.mu.Unlock()
	if !active && mode != "none" {
		tasks, err := c.storedTasks(r.Context(), id, mode == "all")
		if err != nil {
			c.writeErr(w, err)
			return
		}
		st.Tasks = tasks
	}
	why, err := c.waitReasons(r.Context(), id)
	if err != nil {
		c.writeErr(w, err)
		return
	}
	st.Waiting = why
	for i := range st.Tasks {
		if st.Tasks[i].State == wire.TaskQueued && st.Tasks[i].Why == "" && len(why) > 0 {
			st.Tasks[i].Why = why[0]
		}
	}
	writeJSON(w, http.StatusOK, st)
}

func (c *Coordinator) handleCancel(w http.ResponseWriter, r *http.Request) {
	st, err := c.cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		c.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (c *Coordinator) handleDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, err := c.deleteJob(r.Context(), id)
	if err != nil {
		c.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.DeleteResponse{Job: id, Objects: n})
}

func (c *Coordinator) handleNodes(w http.ResponseWriter, r *http.Request) {
	nodes, err := c.readNodes(r.Context())
	if err != nil {
		c.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NodeList{Nodes: nodes})
}

func (c *Coordinator) handleHealth(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	body := map[string]any{"leader": c.leading, "leader_url": c.leaderURL, "id": c.opts.ID}
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// finishedJob returns the job's status when it has a manifest.
func (c *Coordinator) finishedJob(w http.ResponseWriter, id string) bool {
	c.mu.Lock()
	j, ok := c.jobs[id]
	var key string
	if ok {
		key = j.rec.ManifestKey
	}
	c.mu.Unlock()
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "no job "+id, nil)
		return false
	case key == "":
		writeError(w, http.StatusConflict, wire.CodeConflict, "job "+id+" has no manifest yet", nil)
		return false
	}
	return true
}

// handleFiles presigns a finished job's manifest, assembled files and the
// frames of the window of indices ?from=&to= (at most wire.MaxFileWindow;
// from defaults to 0, to to the window's end). Frame keys come from the
// indices, so the manifest's frames are not read: a caller asks for the
// windows holding the frames it lists.
func (c *Coordinator) handleFiles(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !c.finishedJob(w, id) {
		return
	}
	ctx := r.Context()
	out := wire.FileList{Expires: c.opts.Now().Add(c.opts.PresignTTL)}
	total, _ := c.frameCount(id)
	q := r.URL.Query()
	from, err1 := strconv.Atoi(cmp.Or(q.Get("from"), "0"))
	to, err2 := strconv.Atoi(cmp.Or(q.Get("to"), strconv.Itoa(min(from+wire.MaxFileWindow, total)-1)))
	if err1 != nil || err2 != nil || from < 0 || to < from || to >= total || to-from >= wire.MaxFileWindow {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest,
			fmt.Sprintf("from and to: a window of at most %d frame indices in 0..%d", wire.MaxFileWindow, total-1), nil)
		return
	}
	m, err := wire.ReadManifestSummary(ctx, c.open, id)
	if err != nil {
		c.writeErr(w, err)
		return
	}
	if out.Manifest.URL, err = c.presign(ctx, wire.ManifestKey(id)); err != nil {
		c.writeErr(w, err)
		return
	}
	out.Manifest.Key = wire.ManifestKey(id)
	out.Frames = make([]wire.FrameURL, 0, to-from+1)
	for i := from; i <= to; i++ {
		key := wire.FrameKey(id, i)
		u, err := c.presign(ctx, key)
		if err != nil {
			c.writeErr(w, err)
			return
		}
		out.Frames = append(out.Frames, wire.FrameURL{Index: i, Key: key, URL: u})
	}
	for _, o := range m.Outputs {
		u, err := c.presign(ctx, o.Key)
		if err != nil {
			c.writeErr(w, err)
			return
		}
		out.Outputs = append(out.Outputs, wire.FrameURL{Key: o.Key, URL: u})
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Coordinator) handleManifest(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !c.finishedJob(w, id) {
		return
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "limit: a positive number of entries per list", nil)
			return
		}
		limit = n
	}
	w.Header().Set("Content-Type", "application/json")
	if err := c.writeManifestView(r.Context(), w, id, limit); err != nil {
		// Headers are out once the first bytes are: the body ends short,
		// which no JSON reader takes for a whole manifest.
		c.log.Warn("serving manifest failed", "job_id", id, "error", err)
	}
}

// frameCount is the number of frames of job id, and whether it exists.
func (c *Coordinator) frameCount(id string) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j, ok := c.jobs[id]
	if !ok {
		return 0, false
	}
	return j.rec.Spec.TotalFrames(), true
}

func (c *Coordinator) handleFrame(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	idx, err := strconv.Atoi(r.PathValue("index"))
	if err != nil || idx < 0 {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "frame index must be a non-negative integer", nil)
		return
	}
	total, ok := c.frameCount(id)
	if !ok || idx >= total {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, fmt.Sprintf("no frame %d of job %s", idx, id), nil)
		return
	}
	c.proxy(w, r, wire.FrameKey(id, idx), "image/png")
}

func (c *Coordinator) handleOutput(w http.ResponseWriter, r *http.Request) {
	id, name := r.PathValue("id"), r.PathValue("name")
	if !c.finishedJob(w, id) {
		return
	}
	ctype := wire.OutputTypes[name]
	if ctype == "" {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, fmt.Sprintf("no output %q (want %s or %s)", name, wire.AnimationGIF, wire.AnimationMP4), nil)
		return
	}
	c.proxy(w, r, wire.OutputKey(id, name), ctype)
}

func (c *Coordinator) proxy(w http.ResponseWriter, r *http.Request, key, ctype string) {
	body, size, err := c.openObject(r.Context(), key)
	if err != nil {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, err.Error(), nil)
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, body)
}

// eventInterval bounds how often a status event is sent to one stream.
const eventInterval = 250 * time.Millisecond

// handleEvents streams JobEvents as server-sent events: a status event
// first and whenever counts change (at most every eventInterval), progress
// events as nodes send them, and an end event when the job finishes.
func (c *Coordinator) handleEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, wire.CodeInternal, "streaming unsupported", nil)
		return
	}
	l := newListener()
	c.mu.Lock()
	j, ok := c.jobs[id]
	if !ok {
		c.mu.Unlock()
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "no job "+id, nil)
		return
	}
	st := c.status(j, false)
	finished := !j.active()
	if !finished {
		j.listeners[l] = struct{}{}
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(j.listeners, l)
		c.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(ev wire.JobEvent) bool {
		ev.Time = c.opts.Now()
		b, _ := json.Marshal(ev)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, b); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	if !send(wire.JobEvent{Type: wire.EventStatus, Job: &st}) {
		return
	}
	if finished {
		send(wire.JobEvent{Type: wire.EventEnd, Job: &st})
		return
	}
	c.streamEvents(r.Context(), j, l, send)
}

// streamEvents sends j's events to l's stream until the job ends, send
// fails or ctx ends.
func (c *Coordinator) streamEvents(ctx context.Context, j *job, l *listener, send func(wire.JobEvent) bool) {
	tick := time.NewTicker(eventInterval)
	defer tick.Stop()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	changed := false
	snapshot := func() wire.JobStatus {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.status(j, false)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.notifyC:
			changed = true
		case <-tick.C:
			if changed {
				changed = false
				st := snapshot()
				if !send(wire.JobEvent{Type: wire.EventStatus, Job: &st}) {
					return
				}
			}
		case p := <-l.progress:
			if !send(wire.JobEvent{Type: wire.EventProgress, Progress: &p}) {
				return
			}
		case <-keepalive.C:
			st := snapshot()
			if !send(wire.JobEvent{Type: wire.EventStatus, Job: &st}) {
				return
			}
		case <-l.done:
			st := snapshot()
			typ := wire.EventEnd
			if !wire.JobFinished(st.State) {
				typ = wire.EventStatus // leadership moved; the client reconnects
			}
			send(wire.JobEvent{Type: typ, Job: &st})
			return
		}
	}
}
