package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/latentfarm/latentfarm/shared/media"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// assembleLeaveFor is how many times ExcludedRunAfter deliveries a node
// without ffmpeg leaves an MP4-wanting assembly to the nodes with it before
// it makes the GIF alone. Whichever node pulls first gets a redelivered
// task, so the odds of the task never reaching a node with ffmpeg halve
// with every delivery.
const assembleLeaveFor = 4

// ffmpegNodeAlive reports whether a live node other than this one, not
// draining, advertises ffmpeg.
func (n *Node) ffmpegNodeAlive(ctx context.Context) bool {
	gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := n.etc.Get(gctx, wire.NodesPrefix, clientv3.WithPrefix())
	if err != nil {
		return true // cannot tell: keep leaving it, until the delivery count says otherwise
	}
	for _, kv := range resp.Kvs {
		var info wire.NodeInfo
		if json.Unmarshal(kv.Value, &info) == nil && info.ID != n.opts.ID &&
			info.State != wire.NodeDraining && info.Can(wire.CapabilityFFmpeg) {
			return true
		}
	}
	return false
}

// checkAssembly lists what is wrong with an assemble task.
func checkAssembly(t *wire.Task) []string {
	a := t.Assemble
	var problems []string
	if a.Frames < 1 || a.FPS < 1 {
		problems = append(problems, fmt.Sprintf("assembly of %d frames at %d fps", a.Frames, a.FPS))
	}
	prefix := wire.OutputKey(t.JobID, "")
	for _, k := range []string{a.GIFKey, a.MP4Key} {
		if !strings.HasPrefix(k, prefix) || strings.Contains(k[len(prefix):], "/") || path.Clean(k) != k {
			problems = append(problems, fmt.Sprintf("output key %q is outside %s", k, prefix))
		}
	}
	return problems
}

// assemble builds an animation from its job's frames in S3: a GIF always,
// an MP4 when the task asks for one and this node has ffmpeg. The files go
// beside the frames under fixed keys, so a task run twice writes the same
// objects again.
func (n *Node) assemble(ctx context.Context, task *wire.Task, res *wire.Result) error {
	a := task.Assemble
	start := time.Now()
	frames, err := n.readFrames(ctx, task.JobID, a.Frames)
	if err != nil {
		return err
	}
	res.Timings.LoadMS = time.Since(start).Milliseconds()
	encStart := time.Now()
	var gif bytes.Buffer
	if err := media.EncodeGIF(&gif, frames, a.FPS); err != nil {
		return Retryable(wire.CodeRenderFailed, fmt.Errorf("node: %w", err))
	}
	if err := n.putOutput(ctx, res, wire.AnimationGIF, a.GIFKey, gif.Bytes()); err != nil {
		return err
	}
	switch {
	case !a.MP4:
		res.Notes = append(res.Notes, "no MP4: no node of the farm had ffmpeg when the frames were done")
	case n.opts.FFmpeg == "":
		res.Notes = append(res.Notes, "no MP4: node "+n.opts.ID+" assembled the animation without ffmpeg (no node with ffmpeg took the task)")
	default:
		var mp4 bytes.Buffer
		if err := media.EncodeMP4(ctx, n.opts.FFmpeg, &mp4, frames, a.FPS); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return Retryable(wire.CodeRenderFailed, fmt.Errorf("node: %w", err))
		}
		if err := n.putOutput(ctx, res, wire.AnimationMP4, a.MP4Key, mp4.Bytes()); err != nil {
			return err
		}
	}
	d := time.Since(encStart)
	res.Timings.DenoiseMS = d.Milliseconds()
	res.GPUSeconds = d.Seconds()
	return nil
}

// putOutput uploads an assembled file and records it in res.
func (n *Node) putOutput(ctx context.Context, res *wire.Result, name, key string, data []byte) error {
	t := time.Now()
	if err := n.upload(ctx, key, data, wire.OutputTypes[name]); err != nil {
		return err
	}
	res.Timings.UploadMS += time.Since(t).Milliseconds()
	res.Outputs = append(res.Outputs, wire.OutputFile{Name: name, Key: key, Bytes: int64(len(data))})
	return nil
}

// frameReaders is how many frames an assembly downloads at once.
const frameReaders = 8

// readFrames downloads and decodes frames 0..n-1 of job, several at a time.
func (n *Node) readFrames(ctx context.Context, job string, count int) ([]image.Image, error) {
	frames := make([]image.Image, count)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range frameReaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				img, err := n.readFrame(ctx, wire.FrameKey(job, i))
				if err != nil {
					cancel(err)
					continue
				}
				frames[i] = img
			}
		}()
	}
feed:
	for i := range frames {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return frames, nil
}

// readFrame downloads and decodes one rendered frame.
func (n *Node) readFrame(ctx context.Context, key string) (image.Image, error) {
	data, err := n.get(ctx, key)
	if err != nil {
		return nil, err
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, Retryable(wire.CodeRenderFailed, fmt.Errorf("node: frame %s: %w", key, err))
	}
	return img, nil
}

// input fetches an image input for the engine.
func (n *Node) input(ctx context.Context, key string) ([]byte, error) {
	if !wire.ValidInputKey(key) {
		return nil, Permanent(wire.CodeInvalidTask, fmt.Errorf("node: %q is not an input key", key))
	}
	return n.get(ctx, key)
}

// get reads an object whole. A missing object is a task failure a retry
// may fix (it may not be visible yet); any other S3 failure returns the
// task to the queue.
func (n *Node) get(ctx context.Context, key string) ([]byte, error) {
	var data []byte
	missing := false
	err := s3Retries(ctx, func() (bool, error) {
		var err error
		data, err = n.getOnce(ctx, key)
		missing = err != nil && minio.ToErrorResponse(err).Code == "NoSuchKey"
		return missing, err
	})
	switch {
	case err == nil:
		return data, nil
	case missing:
		return nil, Retryable(wire.CodeRenderFailed, fmt.Errorf("node: %s is not in the store", key))
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("node: get %s: %w: %w", key, ErrUnavailable, err)
}

func (n *Node) getOnce(ctx context.Context, key string) ([]byte, error) {
	gctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	obj, err := n.s3.GetObject(gctx, n.opts.S3.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	data, err := io.ReadAll(io.LimitReader(obj, media.MaxInputBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > media.MaxInputBytes {
		return nil, errors.New("object larger than an input may be")
	}
	return data, nil
}
