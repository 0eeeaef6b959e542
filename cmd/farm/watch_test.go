package main

import (
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// The frame strip fills from frame events and from the done event of each
// task, which covers the frames whose own events a quick node left out.
func TestMarkArrived_FramesAndDoneTasks(t *testing.T) {
	job := "j-20261207-010000-abcdef"
	st := wire.JobStatus{ID: job, FramesTotal: 8}
	arrived := map[int]bool{}
	if note := markArrived(arrived, &wire.Progress{JobID: job, NodeID: "n1", Stage: wire.StageFrame, Frame: 1}); note != "frame 1 from n1" {
		t.Errorf("frame event: note %q", note)
	}
	if got := frameStrip(st, arrived); got != "frames .#......" {
		t.Errorf("after a frame event: %q", got)
	}
	done := &wire.Progress{JobID: job, TaskID: wire.TaskID(job, 4, 7), NodeID: "n2", Stage: wire.StageDone, Time: time.Now()}
	if note := markArrived(arrived, done); note != "frame 7 from n2" {
		t.Errorf("done event: note %q", note)
	}
	if got := frameStrip(st, arrived); got != "frames .#..####" {
		t.Errorf("after a task's done event: %q", got)
	}
	assembled := &wire.Progress{JobID: job, TaskID: wire.AssembleTaskID(job), Stage: wire.StageDone}
	if note := markArrived(arrived, assembled); note != "" || len(arrived) != 5 {
		t.Errorf("the assembly's done event: note %q, %d frames marked", note, len(arrived))
	}
}
