package wire

import (
	"fmt"
	"sort"
)

// Plan is a job's tasks by index, computed from the spec when needed
// instead of held: a million-frame batch is a quarter of a million tasks,
// and the coordinator keeps a few bytes per task, not the tasks. Task i is
// the same whenever it is asked for (ids are deterministic).
type Plan struct {
	job   string
	spec  JobSpec
	est   int64
	class Class
	// total frames; chunks of FramesPerTask frames, the frame tasks.
	total, chunks int
	// order[i] is the chunk that task i renders (an animation's chunks go
	// coarse to fine); pos is its inverse. Both nil for a batch, whose task
	// i renders chunk i.
	order, pos []int32
	// assemble is set for an animation: its last task builds the GIF/MP4.
	assemble bool
}

// NewPlan plans the tasks of a normalized spec. It returns an error only
// for a spec that fails Validate, or an invalid job id.
func NewPlan(job string, s JobSpec) (*Plan, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if !ValidID(job) {
		return nil, fmt.Errorf("wire: plan: job id %q is not valid", job)
	}
	p := &Plan{job: job, spec: s, est: s.VRAMEstimate(), total: s.TotalFrames()}
	p.class, _ = ClassFor(s.Backend, p.est)
	p.chunks = (p.total + s.FramesPerTask - 1) / s.FramesPerTask
	if s.Kind == KindAnimation {
		p.assemble = true
		p.orderCoarseToFine()
	}
	return p, nil
}

// Split lists every task of a normalized, valid spec, in publishing order:
// frame order for a batch; for an animation, chunks of consecutive frames
// coarse to fine, then the assemble task. Big jobs use a Plan instead.
func Split(job string, s JobSpec) ([]Task, error) {
	p, err := NewPlan(job, s)
	if err != nil {
		return nil, err
	}
	tasks := make([]Task, p.Len())
	for i := range tasks {
		tasks[i] = p.Task(i)
	}
	return tasks, nil
}

// Len is the number of tasks.
func (p *Plan) Len() int {
	if p.assemble {
		return p.chunks + 1
	}
	return p.chunks
}

// Job is the job id the plan is for.
func (p *Plan) Job() string { return p.job }

// Class is the GPU class of every task.
func (p *Plan) Class() Class { return p.class }

// VRAMBytes is every task's VRAM estimate.
func (p *Plan) VRAMBytes() int64 { return p.est }

// IsAssemble reports whether task i is an animation's assemble task.
func (p *Plan) IsAssemble(i int) bool { return p.assemble && i == p.chunks }

// FrameRange is the first and last frame of task i; ok is false for the
// assemble task, which has no frames.
func (p *Plan) FrameRange(i int) (first, last int, ok bool) {
	if i < 0 || i >= p.chunks {
		return 0, 0, false
	}
	c := i
	if p.order != nil {
		c = int(p.order[i])
	}
	first = c * p.spec.FramesPerTask
	return first, min(first+p.spec.FramesPerTask, p.total) - 1, true
}

// FrameCount is the number of frames task i renders.
func (p *Plan) FrameCount(i int) int {
	first, last, ok := p.FrameRange(i)
	if !ok {
		return 0
	}
	return last - first + 1
}

// TaskID is the id of task i.
func (p *Plan) TaskID(i int) string {
	if p.IsAssemble(i) {
		return AssembleTaskID(p.job)
	}
	first, last, _ := p.FrameRange(i)
	return TaskID(p.job, first, last)
}

// Index finds the task with id; ok is false when no task of the plan has it.
func (p *Plan) Index(id string) (int, bool) {
	if p.assemble && id == AssembleTaskID(p.job) {
		return p.chunks, true
	}
	job, first, last, err := ParseTaskID(id)
	if err != nil || job != p.job || first%p.spec.FramesPerTask != 0 {
		return 0, false
	}
	c := first / p.spec.FramesPerTask
	if c >= p.chunks || last != min(first+p.spec.FramesPerTask, p.total)-1 {
		return 0, false
	}
	if p.pos != nil {
		return int(p.pos[c]), true
	}
	return c, true
}

// Task builds task i with Attempt 1 (PublishedAt is the publisher's).
func (p *Plan) Task(i int) Task {
	s := &p.spec
	if p.IsAssemble(i) {
		return s.assembleTask(p.job, p.class)
	}
	first, last, _ := p.FrameRange(i)
	t := Task{
		ID: TaskID(p.job, first, last), JobID: p.job, Kind: s.Kind, Attempt: 1,
		Model: s.Model, ModelFamily: s.ModelFamily, Precision: s.Precision, Backend: s.Backend,
		Class: p.class, Priority: s.Priority, VRAMBytes: p.est,
		Width: s.Width, Height: s.Height, Steps: s.Steps, CFGScale: s.CFG(),
		Sampler: s.Sampler, Schedule: s.Schedule, ClipSkip: s.ClipSkip,
		InitImage: s.InitImage, Mask: s.Mask, Outpaint: s.Outpaint, Strength: s.Strength,
		Frames: make([]Frame, 0, last-first+1),
	}
	for f := first; f <= last; f++ {
		t.Frames = append(t.Frames, s.FrameAt(p.job, f))
	}
	return t
}

// orderCoarseToFine orders an animation's chunks by the coarsest frame each
// holds (frameLevel), so that a job half done already shows the whole
// motion; chunks of one level stay in frame order.
func (p *Plan) orderCoarseToFine() {
	s := &p.spec
	keys := make(map[int]bool, len(s.Keyframes))
	for _, k := range s.Keyframes {
		keys[k.Frame] = true
	}
	level := make([]int8, p.chunks)
	p.order = make([]int32, p.chunks)
	for c := range p.chunks {
		l := 4
		for f := c * s.FramesPerTask; f < min((c+1)*s.FramesPerTask, p.total); f++ {
			l = min(l, s.frameLevel(f, keys))
		}
		level[c] = int8(l)
		p.order[c] = int32(c)
	}
	sort.SliceStable(p.order, func(a, b int) bool { return level[p.order[a]] < level[p.order[b]] })
	p.pos = make([]int32, p.chunks)
	for i, c := range p.order {
		p.pos[c] = int32(i)
	}
}
