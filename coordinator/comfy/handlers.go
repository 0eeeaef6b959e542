package comfy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/latentfarm/latentfarm/shared/media"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// writeError answers a request ComfyUI would refuse without a prompt error.
func writeError(w http.ResponseWriter, code int, typ, message string) {
	writeJSON(w, code, map[string]any{"error": Error{Type: typ, Message: message, ExtraInfo: map[string]any{}}})
}

// readJSON reads an optional small JSON body into v; an empty body is none.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err == nil && len(bytes.TrimSpace(data)) > 0 {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body must be JSON: "+err.Error())
		return false
	}
	return true
}

// handleQueueInfo is GET /prompt, which clients poll to see the server is up.
func (s *Server) handleQueueInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.queueInfo(r.Context()))
}

// handleQueue is GET /queue: every unfinished farm job, running once a
// node took it; jobs of other farm clients show with an empty prompt.
func (s *Server) handleQueue(w http.ResponseWriter, r *http.Request) {
	jobs, recs, err := s.prompts(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, errFarm, err.Error())
		return
	}
	run, pending := [][]any{}, [][]any{}
	for i, st := range jobs {
		if wire.JobFinished(st.State) {
			continue
		}
		item := farmQueueItem(st.ID)
		if recs[i] != nil {
			item = recs[i].queueItem(st.ID)
		}
		if running(st) {
			run = append(run, item)
		} else {
			pending = append(pending, item)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"queue_running": run, "queue_pending": pending})
}

// handleQueueEdit is POST /queue: {"clear": true} cancels every pending
// prompt, {"delete": [ids]} the pending prompts named.
func (s *Server) handleQueueEdit(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Clear  json.RawMessage `json:"clear"`
		Delete []string        `json:"delete"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	all := string(bytes.TrimSpace(body.Clear)) == "true"
	s.cancelWhere(r, func(st wire.JobStatus, _ *record) bool {
		return !running(st) && (all || slices.Contains(body.Delete, st.ID))
	})
	w.WriteHeader(http.StatusOK)
}

// handleInterrupt is POST /interrupt: it cancels the running prompts, or
// only the one of {"prompt_id"}, or those of {"client_id"} (or ?clientId=).
func (s *Server) handleInterrupt(w http.ResponseWriter, r *http.Request) {
	var body struct {
		PromptID string `json:"prompt_id"`
		ClientID string `json:"client_id"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if body.ClientID == "" {
		body.ClientID = r.URL.Query().Get("clientId")
	}
	s.cancelWhere(r, func(st wire.JobStatus, rec *record) bool {
		return running(st) && (body.PromptID == "" || st.ID == body.PromptID) &&
			(body.ClientID == "" || rec.ClientID == body.ClientID)
	})
	w.WriteHeader(http.StatusOK)
}

// cancelWhere cancels the unfinished prompts that match.
func (s *Server) cancelWhere(r *http.Request, match func(wire.JobStatus, *record) bool) {
	jobs, recs, err := s.prompts(r.Context())
	if err != nil {
		s.log.Warn("listing jobs failed", "error", err)
		return
	}
	for i, st := range jobs {
		if recs[i] == nil || wire.JobFinished(st.State) || !match(st, recs[i]) {
			continue
		}
		if err := s.farm.Cancel(r.Context(), st.ID); err != nil {
			s.log.Warn("cancelling a prompt failed", "job_id", st.ID, "error", err)
			continue
		}
		s.log.Info("prompt cancelled", "job_id", st.ID)
	}
}

// handleHistory is GET /history[?max_items=N]: the last N finished prompts,
// oldest first.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	limit := -1
	if v := r.URL.Query().Get("max_items"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "invalid_request", "max_items must be a whole number")
			return
		}
		limit = n
	}
	jobs, recs, err := s.prompts(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, errFarm, err.Error())
		return
	}
	var ids []string
	var entries []any
	for i, st := range jobs {
		if recs[i] == nil || !wire.JobFinished(st.State) {
			continue
		}
		fr, err := frames(r.Context(), s.farm, st)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, errFarm, err.Error())
			return
		}
		ids = append(ids, st.ID)
		entries = append(entries, recs[i].historyEntry(st, fr))
	}
	if limit >= 0 && len(ids) > limit {
		ids, entries = ids[len(ids)-limit:], entries[len(entries)-limit:]
	}
	writeOrdered(w, ids, entries)
}

// handleHistoryOne is GET /history/{id}: {} until the prompt finished.
func (s *Server) handleHistoryOne(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, err := s.farm.Job(r.Context(), id)
	switch {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusOK, map[string]any{})
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, errFarm, err.Error())
		return
	}
	rec := s.recordOf(r.Context(), st)
	if rec == nil || !wire.JobFinished(st.State) {
		writeJSON(w, http.StatusOK, map[string]any{})
		return
	}
	fr, err := frames(r.Context(), s.farm, st)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, errFarm, err.Error())
		return
	}
	writeOrdered(w, []string{id}, []any{rec.historyEntry(st, fr)})
}

// writeOrdered writes a JSON object whose keys keep their order.
func writeOrdered(w http.ResponseWriter, keys []string, values []any) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range keys {
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(values[i])
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(vb)
	}
	buf.WriteString("}\n")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}

// handleView is GET /view?filename=...&type=output|temp|input: an output
// image (its file name names the job and frame) or an uploaded image.
func (s *Server) handleView(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("filename")
	if i := strings.LastIndex(name, " ["); i > 0 && strings.HasSuffix(name, "]") {
		name = name[:i] // ComfyUI's "name.png [output]" annotation
	}
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	var body io.ReadCloser
	var size int64
	var err error
	ctype := "image/png"
	switch q.Get("type") {
	case "input":
		var key string
		if key, err = inputKey(name); err == nil {
			body, size, err = s.farm.OpenInput(r.Context(), key)
		}
		if strings.HasSuffix(name, ".jpg") {
			ctype = "image/jpeg"
		}
	case "", "output", "temp":
		job, index, ok := parseFrameFile(name)
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", "no image "+name+" on this farm")
			return
		}
		body, size, err = s.farm.OpenFrame(r.Context(), job, index)
	default:
		writeError(w, http.StatusBadRequest, "invalid_request", "type must be output, temp or input")
		return
	}
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, errFarm, err.Error())
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Content-Disposition", `filename="`+name+`"`)
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, body)
}

// handleUpload is POST /upload/image (multipart, field "image"): the image
// is stored under its content address, and its name is what LoadImage
// takes. Uploading the same bytes again gives the same name, so
// "overwrite" and "subfolder" change nothing.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, media.MaxInputBytes+1<<20)
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "want a multipart form with an \"image\" file: "+err.Error())
		return
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	f, hdr, err := r.FormFile("image")
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "want a multipart form with an \"image\" file: "+err.Error())
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, media.MaxInputBytes+1))
	if err == nil {
		_, err = media.DecodeInput(hdr.Filename, data)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_image", err.Error())
		return
	}
	ref, err := s.farm.PutInput(r.Context(), data)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, errFarm, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": inputName(ref.Key), "subfolder": "", "type": "input"})
}

// handleObjectInfo is GET /object_info[/{class}]: the classes the farm
// runs, with the farm's models as ckpt_name options; {} for another class.
func (s *Server) handleObjectInfo(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("class")
	opts := map[string][]string{optionsImages: {}}
	if name == "" || name == classCheckpoint {
		models, err := s.farm.Models(r.Context())
		if err != nil {
			s.log.Warn("listing models failed", "error", err)
		}
		opts[optionsModels] = models
	}
	out := map[string]any{}
	for _, c := range classes {
		if name == "" || c.name == name {
			out[c.name] = c.objectInfo(opts)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleSystemStats is GET /system_stats: every GPU of every live node is a
// device (a CPU node is one device with its render budget as memory).
// Nodes report no free host memory, so ram_free is the total.
func (s *Server) handleSystemStats(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.farm.Nodes(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, errFarm, err.Error())
		return
	}
	devices := []map[string]any{}
	var ram int64
	for _, n := range nodes {
		ram += n.MemoryBytes
		if len(n.GPUs) == 0 {
			devices = append(devices, device(n.ID+": cpu", n.Backend, 0, n.UsableBytes, n.UsableBytes))
		}
		for _, g := range n.GPUs {
			devices = append(devices, device(n.ID+": "+g.Name, n.Backend, g.Index, g.TotalVRAM, g.FreeVRAM))
		}
	}
	version := "latentfarm"
	if bi, ok := debug.ReadBuildInfo(); ok {
		version += " " + bi.Main.Version
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"system": map[string]any{"os": "posix", "ram_total": ram, "ram_free": ram, "comfyui_version": version,
			"python_version": "", "pytorch_version": "", "embedded_python": false, "argv": []string{}},
		"devices": devices,
	})
}

func device(name, typ string, index int, total, free int64) map[string]any {
	return map[string]any{"name": name, "type": typ, "index": index, "vram_total": total, "vram_free": free,
		"torch_vram_total": total, "torch_vram_free": free}
}
