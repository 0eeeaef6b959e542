package localrender

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"time"

	"github.com/latentfarm/latentfarm/shared/media"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// assemble builds an animation from the frames in the output folder, as a
// farm node's assemble task does from S3: a GIF always, an MP4 when there
// is an ffmpeg. An ffmpeg that fails costs the MP4, noted in the manifest,
// not the job.
func (r *renderer) assemble(ctx context.Context, a *wire.Assembly) error {
	frames := make([]image.Image, a.Frames)
	for i := range frames {
		img, err := r.readFrame(i)
		if err != nil {
			return err
		}
		frames[i] = img
	}
	var gif bytes.Buffer
	if err := r.output(wire.AnimationGIF, func() error { return media.EncodeGIF(&gif, frames, a.FPS) }, &gif); err != nil {
		return err
	}
	ffmpeg := r.o.FFmpeg
	if ffmpeg == "" {
		ffmpeg = media.FFmpeg()
	}
	if ffmpeg == "" {
		r.man.Notes = append(r.man.Notes, "no MP4: ffmpeg was not found on PATH (install ffmpeg with libx264 for one)")
		return nil
	}
	var mp4 bytes.Buffer
	err := r.output(wire.AnimationMP4, func() error { return media.EncodeMP4(ctx, ffmpeg, &mp4, frames, a.FPS) }, &mp4)
	if err != nil && ctx.Err() == nil {
		r.man.Notes = append(r.man.Notes, fmt.Sprintf("no MP4: %v", err))
		return nil
	}
	return err
}

// output encodes one animation file into buf, writes it and records it.
func (r *renderer) output(name string, encode func() error, buf *bytes.Buffer) error {
	start := time.Now()
	if err := encode(); err != nil {
		return fmt.Errorf("localrender: %s: %w", name, err)
	}
	if err := writeFile(filepath.Join(r.o.Output, name), buf.Bytes()); err != nil {
		return err
	}
	d := time.Since(start)
	r.man.GPUSeconds += d.Seconds()
	r.man.Outputs = append(r.man.Outputs, wire.OutputFile{Name: name, Key: name, Bytes: int64(buf.Len())})
	r.emit(Event{Stage: StageAssemble, Path: name, Elapsed: d})
	return nil
}

// readFrame decodes a frame written by this run.
func (r *renderer) readFrame(index int) (image.Image, error) {
	p := filepath.Join(r.o.Output, filepath.FromSlash(FrameFile(index)))
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("localrender: assemble: %w", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("localrender: assemble: %s: %w", p, err)
	}
	return img, nil
}
