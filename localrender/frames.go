package localrender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// renderer renders one job's frames and keeps its manifest.
type renderer struct {
	o     Options
	p     *pipeline.Pipeline
	in    images
	start time.Time
	man   wire.Manifest
}

func newRenderer(o Options, p *pipeline.Pipeline, spec wire.JobSpec, in images, start time.Time) *renderer {
	return &renderer{o: o, p: p, in: in, start: start, man: wire.Manifest{
		JobID: JobID, State: wire.JobRunning, Spec: spec, CreatedAt: start.UTC(),
		FramesTotal: spec.TotalFrames(), Frames: []wire.ManifestFrame{}, Nodes: map[string]int{},
	}}
}

// run renders every frame task in publishing order, assembles an
// animation, and writes the manifest, also when a frame fails.
func (r *renderer) run(ctx context.Context, tasks []wire.Task) (wire.Manifest, error) {
	err := os.MkdirAll(filepath.Join(r.o.Output, "frames"), 0o755)
	if err != nil {
		return wire.Manifest{}, fmt.Errorf("localrender: %w", err)
	}
	for i := range tasks {
		t := &tasks[i]
		if t.Assemble != nil {
			err = r.assemble(ctx, t.Assemble)
		} else {
			err = r.task(ctx, t)
		}
		if err != nil {
			break
		}
	}
	sort.Slice(r.man.Frames, func(a, b int) bool { return r.man.Frames[a].Index < r.man.Frames[b].Index })
	r.man.State = wire.JobDone
	switch {
	case err != nil && ctx.Err() != nil:
		r.man.State = wire.JobCancelled
	case err != nil:
		r.man.State = wire.JobFailed
	}
	if werr := r.writeManifest(); werr != nil {
		return r.man, errors.Join(err, werr)
	}
	return r.man, err
}

// task renders the frames of one task in order.
func (r *renderer) task(ctx context.Context, t *wire.Task) error {
	for _, f := range t.Frames {
		err := ctx.Err()
		if err == nil {
			err = r.frame(ctx, t, f)
		}
		if err != nil {
			code := wire.CodeRenderFailed
			if ctx.Err() != nil {
				code = wire.CodeCancelled
			}
			r.man.Failed = append(r.man.Failed, wire.FailedFrame{Index: f.Index, TaskID: t.ID,
				Error: wire.Error{Code: code, Message: err.Error()}})
			r.man.Notes = append(r.man.Notes, fmt.Sprintf("stopped at frame %d: %d of %d frames rendered",
				f.Index, len(r.man.Frames), r.man.FramesTotal))
			return err
		}
	}
	return nil
}

// frame renders frame f of t and writes it to the output folder.
func (r *renderer) frame(ctx context.Context, t *wire.Task, f wire.Frame) error {
	start := time.Now()
	req := node.FrameRequest(t, f, r.in.init, r.in.mask)
	res, err := r.generate(ctx, req, func(step, total int) {
		r.emit(Event{Stage: wire.StageStep, Frame: f.Index, Step: step, Steps: total})
	})
	if err != nil {
		return fmt.Errorf("localrender: frame %d: %w", f.Index, err)
	}
	var buf bytes.Buffer
	m := r.p.Model()
	if err := pipeline.EncodePNG(&buf, res.Image, pipeline.Parameters(res.Request, m.Name, m.Hash)); err != nil {
		return fmt.Errorf("localrender: frame %d: %w", f.Index, err)
	}
	rel := FrameFile(f.Index)
	if err := writeFile(filepath.Join(r.o.Output, filepath.FromSlash(rel)), buf.Bytes()); err != nil {
		return err
	}
	d := time.Since(start)
	r.man.Frames = append(r.man.Frames, wire.ManifestFrame{
		Index: f.Index, Key: rel, Prompt: f.Prompt, Seed: f.Seed, Node: NodeName, GPU: r.o.Backend.Name(),
		TaskID: t.ID, Attempt: 1, RenderMS: d.Milliseconds(), GPUSeconds: d.Seconds(),
	})
	r.man.Nodes[NodeName]++
	r.man.GPUSeconds += d.Seconds()
	r.emit(Event{Stage: wire.StageFrame, Frame: f.Index, Path: rel, Elapsed: d})
	return nil
}

// generate runs the engine, turning a panic (backend ops panic on shape
// mismatches: a broken model or a bug) into an error, as a node does.
func (r *renderer) generate(ctx context.Context, req pipeline.Request, progress pipeline.Progress) (res *pipeline.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("engine panic: %v", p)
		}
	}()
	return r.p.Generate(ctx, req, progress)
}

// emit reports progress with the frame counts filled in.
func (r *renderer) emit(e Event) {
	if r.o.Progress == nil {
		return
	}
	e.Done, e.Frames = len(r.man.Frames), r.man.FramesTotal
	r.o.Progress(e)
}

// writeManifest finishes the manifest and writes it.
func (r *renderer) writeManifest() error {
	now := time.Now()
	r.man.FinishedAt = now.UTC()
	r.man.WallSeconds = now.Sub(r.start).Seconds()
	data, err := json.MarshalIndent(r.man, "", "  ")
	if err != nil {
		return fmt.Errorf("localrender: manifest: %w", err)
	}
	if err := writeFile(filepath.Join(r.o.Output, ManifestFile), append(data, '\n')); err != nil {
		return err
	}
	r.emit(Event{Stage: wire.StageDone, Path: ManifestFile, Elapsed: now.Sub(r.start)})
	return nil
}

// writeFile replaces the file at path with data through a temporary file
// and a rename, so that an interrupted run never leaves half a file.
func writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("localrender: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("localrender: write %s: %w", path, err)
	}
	return nil
}
