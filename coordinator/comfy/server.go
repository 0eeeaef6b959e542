package comfy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// maxPromptBytes bounds a POST /prompt body.
const maxPromptBytes = 8 << 20

// Options configure a Server.
type Options struct {
	// Farm runs the prompts. Required.
	Farm Farm
	// Logger is the parent logger (default: hclog at info on stderr).
	Logger hclog.Logger
	// KeepAlive is how often an idle websocket gets a status message
	// (default 5s); ComfyUI clients take 10s of silence for a dead server.
	KeepAlive time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server serves ComfyUI's API. Build it with New and Mount it on a mux.
type Server struct {
	opts Options
	farm Farm
	log  hclog.Logger
	hub  *hub

	mu      sync.Mutex
	records map[string]*record // by job id; nil for a job of another client
	number  int64
}

// New checks opts and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Farm == nil {
		return nil, errors.New("comfy: options: a Farm is required")
	}
	if opts.KeepAlive < 0 {
		return nil, fmt.Errorf("comfy: options: keep-alive %v is negative", opts.KeepAlive)
	}
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "comfy", Level: hclog.Info})
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{opts: opts, farm: opts.Farm, log: opts.Logger, hub: &hub{clients: map[string]*wsClient{}},
		records: map[string]*record{}}, nil
}

// Mount adds ComfyUI's routes to mux, each also under /api as ComfyUI
// serves them; wrap guards every handler (the coordinator's leader check).
//
//	GET  /prompt                 queue length -> {"exec_info": {"queue_remaining": n}}
//	POST /prompt                 queue a workflow -> {"prompt_id", "number", "node_errors"}
//	GET  /queue                  running and pending prompts
//	POST /queue                  {"clear": true} or {"delete": [ids]}: cancel pending prompts
//	GET  /history[/{id}]         finished prompts with their outputs
//	POST /interrupt              cancel running prompts (all, or {"prompt_id"} / {"client_id"})
//	GET  /view?filename=&type=   an output image, or an uploaded one (type=input)
//	POST /upload/image           store an image for LoadImage (multipart field "image")
//	GET  /object_info[/{class}]  the node classes the farm runs
//	GET  /system_stats           the farm's nodes as devices
//	GET  /ws?clientId=           status, progress, executing and executed messages
func (s *Server) Mount(mux *http.ServeMux, wrap func(http.HandlerFunc) http.HandlerFunc) {
	routes := []struct {
		pattern string
		h       http.HandlerFunc
	}{
		{"GET /prompt", s.handleQueueInfo},
		{"POST /prompt", s.handlePrompt},
		{"GET /queue", s.handleQueue},
		{"POST /queue", s.handleQueueEdit},
		{"GET /history", s.handleHistory},
		{"GET /history/{id}", s.handleHistoryOne},
		{"POST /interrupt", s.handleInterrupt},
		{"GET /view", s.handleView},
		{"POST /upload/image", s.handleUpload},
		{"GET /object_info", s.handleObjectInfo},
		{"GET /object_info/{class}", s.handleObjectInfo},
		{"GET /system_stats", s.handleSystemStats},
		{"GET /ws", s.handleWS},
	}
	for _, r := range routes {
		method, p, _ := strings.Cut(r.pattern, " ")
		mux.HandleFunc(r.pattern, wrap(r.h))
		mux.HandleFunc(method+" /api"+p, wrap(r.h))
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// promptRequest is the body of POST /prompt.
type promptRequest struct {
	Prompt    json.RawMessage `json:"prompt"`
	ClientID  string          `json:"client_id"`
	ExtraData map[string]any  `json:"extra_data"`
	Front     bool            `json:"front"`
	Number    *float64        `json:"number"`
}

// handlePrompt queues a workflow as one farm job; prompt_id is the job id.
// "front" queues it at high priority.
func (s *Server) handlePrompt(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPromptBytes))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, promptError(errInvalidPrompt,
			fmt.Sprintf("Cannot execute because the request is over %d bytes.", maxPromptBytes), ""))
		return
	}
	var req promptRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, promptError(errInvalidPrompt, "Cannot execute because the request is not JSON.", err.Error()))
		return
	}
	if len(req.Prompt) == 0 || string(req.Prompt) == "null" {
		writeJSON(w, http.StatusBadRequest, promptError(errNoPrompt, "No prompt provided", "No prompt provided"))
		return
	}
	p, pe := translate(r.Context(), req.Prompt, farmImages{farm: s.farm})
	if pe != nil {
		s.log.Info("prompt refused", "error", pe.Error())
		writeJSON(w, http.StatusBadRequest, pe)
		return
	}
	if req.Front {
		p.spec.Priority = wire.PriorityHigh
	}
	st, err := s.farm.Submit(r.Context(), p.spec)
	if fe, ok := wire.AsFieldErrors(err); ok {
		pe := p.refuse(fe)
		s.log.Info("prompt refused", "error", pe.Error())
		writeJSON(w, http.StatusBadRequest, pe)
		return
	}
	if err != nil {
		s.log.Error("submitting a prompt failed", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, promptError(errFarm, "The farm could not queue the prompt.", err.Error()))
		return
	}
	s.mu.Lock()
	s.number++
	number := s.number
	s.mu.Unlock()
	if req.Number != nil {
		number = int64(*req.Number)
	}
	rec := newRecord(p, number, req.ClientID, req.Prompt, req.ExtraData)
	events, err := s.farm.Follow(context.Background(), st.ID)
	if err != nil {
		s.log.Warn("cannot follow the job of a prompt", "job_id", st.ID, "error", err)
	} else {
		go s.follow(st.ID, rec, events)
	}
	s.keep(r.Context(), st.ID, rec)
	s.broadcastStatus(r.Context())
	s.log.Info("prompt queued", "job_id", st.ID, "client_id", req.ClientID, "images", st.FramesTotal)
	writeJSON(w, http.StatusOK, map[string]any{"prompt_id": st.ID, "number": number, "node_errors": map[string]any{}})
}

// keep remembers a prompt's record and stores it beside the job's frames.
func (s *Server) keep(ctx context.Context, id string, rec *record) {
	s.mu.Lock()
	s.records[id] = rec
	s.mu.Unlock()
	data, err := json.Marshal(rec)
	if err == nil {
		err = s.farm.PutJobFile(ctx, id, recordFile, data)
	}
	if err != nil {
		s.log.Warn("storing a prompt's record failed; a new leader will not show its history", "job_id", id, "error", err)
	}
}

// recordOf returns the record of a job made from a prompt, reading it from
// the farm once when this coordinator did not queue it; nil for other jobs.
func (s *Server) recordOf(ctx context.Context, st wire.JobStatus) *record {
	if st.Name != jobName {
		return nil
	}
	s.mu.Lock()
	rec, ok := s.records[st.ID]
	s.mu.Unlock()
	if ok {
		return rec
	}
	data, err := s.farm.ReadJobFile(ctx, st.ID, recordFile)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.log.Warn("reading a prompt's record failed", "job_id", st.ID, "error", err)
			return nil // not remembered: the next call tries again
		}
	} else if err := json.Unmarshal(data, &rec); err != nil {
		s.log.Warn("unreadable prompt record", "job_id", st.ID, "error", err)
		rec = nil
	}
	s.mu.Lock()
	s.records[st.ID] = rec
	s.mu.Unlock()
	return rec
}

// prompts lists the jobs made from prompts, oldest first, with their records.
func (s *Server) prompts(ctx context.Context) ([]wire.JobStatus, []*record, error) {
	jobs, err := s.farm.Jobs(ctx)
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(jobs, func(a, b int) bool {
		if !jobs[a].CreatedAt.Equal(jobs[b].CreatedAt) {
			return jobs[a].CreatedAt.Before(jobs[b].CreatedAt)
		}
		return jobs[a].ID < jobs[b].ID
	})
	recs := make([]*record, len(jobs))
	for i, st := range jobs {
		recs[i] = s.recordOf(ctx, st)
	}
	return jobs, recs, nil
}

// running reports whether a job has started: a node took a task of it.
func running(st wire.JobStatus) bool {
	return st.TasksRunning > 0 || st.FramesDone > 0 || st.FramesFailed > 0 || st.State == wire.JobRunning
}

// queueInfo is ComfyUI's status: how many jobs wait or run on the farm.
func (s *Server) queueInfo(ctx context.Context) map[string]any {
	jobs, err := s.farm.Jobs(ctx)
	if err != nil {
		s.log.Warn("listing jobs failed", "error", err)
	}
	n := 0
	for _, st := range jobs {
		if !wire.JobFinished(st.State) {
			n++
		}
	}
	return map[string]any{"exec_info": map[string]any{"queue_remaining": n}}
}
