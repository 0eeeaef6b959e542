package client

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// DownloadOptions tune Download.
type DownloadOptions struct {
	// Proxy fetches every file through the coordinator instead of from
	// presigned URLs (for stores the client cannot reach directly).
	Proxy bool
	// Parallel downloads at once (default 8).
	Parallel int
	// Progress, when set, is called after each file with counts so far.
	Progress func(done, total int)
}

// Download writes a finished job's manifest (manifest.json), frames
// (frames/<index>.png) and assembled files (animation.gif, animation.mp4)
// under dir and returns the manifest's summary. The manifest streams to
// disk and is read back a frame at a time, and presigned URLs are asked
// for a window of frames at a time, so that no list of a job's frames is
// held whatever its size (a bit per frame is). A presigned URL that fails
// falls back to the coordinator's proxy.
func (c *Client) Download(ctx context.Context, id, dir string, o DownloadOptions) (ManifestSummary, error) {
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	var sum ManifestSummary
	if err := os.MkdirAll(filepath.Join(dir, "frames"), 0o755); err != nil {
		return sum, fmt.Errorf("client: %w", err)
	}
	manifest := filepath.Join(dir, "manifest.json")
	u := c.base + "/v1/jobs/" + url.PathEscape(id) + "/manifest"
	if err := fetchURL(ctx, c.http, u, map[string]string{"Authorization": "Bearer " + c.token}, manifest); err != nil {
		return sum, err
	}
	// Pass 1: which frames the manifest lists.
	var listed wire.FrameSet
	sum, err := walkManifestFile(manifest, func(f wire.ManifestFrame) error {
		if !listed.AddFrame(id, f) {
			return fmt.Errorf("client: manifest frame %d has key %q", f.Index, f.Key)
		}
		return nil
	})
	if err != nil {
		return sum, err
	}
	// Pass 2: the frames, a window of indices at a time.
	var (
		done     int
		outputs  = map[string]string{}
		total    = sum.FrameCount
		maxIndex = listed.Bound()
	)
	for from := 0; from < maxIndex; from += wire.MaxFileWindow {
		to := min(from+wire.MaxFileWindow, maxIndex) - 1
		var frames []int
		for i := from; i <= to; i++ {
			if listed.Has(i) {
				frames = append(frames, i)
			}
		}
		if len(frames) == 0 {
			continue
		}
		urls := map[int]string{}
		if !o.Proxy {
			files, err := c.Files(ctx, id, frames[0], frames[len(frames)-1])
			if err != nil {
				return sum, err
			}
			for _, f := range files.Frames {
				urls[f.Index] = f.URL
			}
			for _, f := range files.Outputs {
				outputs[f.Key] = f.URL
			}
		}
		err := c.fetchFrames(ctx, id, dir, frames, urls, o.Parallel, func() {
			done++
			if o.Progress != nil {
				o.Progress(done, total)
			}
		})
		if err != nil {
			return sum, err
		}
	}
	for _, out := range sum.Outputs {
		if err := c.fetchOutput(ctx, id, out, outputs[out.Key], filepath.Join(dir, path.Base(out.Name))); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// walkManifestFile walks a saved manifest's frames (EachManifestFrame).
func walkManifestFile(name string, fn func(wire.ManifestFrame) error) (ManifestSummary, error) {
	f, err := os.Open(name)
	if err != nil {
		return ManifestSummary{}, fmt.Errorf("client: %w", err)
	}
	defer f.Close()
	return EachManifestFrame(bufio.NewReaderSize(f, 1<<16), fn)
}

// fetchFrames downloads frames (indices) of job id into dir/frames,
// parallel at once, from their presigned URLs where urls has one.
func (c *Client) fetchFrames(ctx context.Context, id, dir string, frames []int, urls map[int]string, parallel int, each func()) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, parallel)
	)
	for _, i := range frames {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			dst := filepath.Join(dir, "frames", path.Base(wire.FrameKey(id, i)))
			err := c.fetchFrame(ctx, id, i, urls[i], dst)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			each()
		}()
	}
	wg.Wait()
	return firstErr
}

// fetchOutput downloads an assembled file (an animation's GIF or MP4).
func (c *Client) fetchOutput(ctx context.Context, id string, o wire.OutputFile, presigned, dst string) error {
	if presigned != "" {
		if err := fetchURL(ctx, c.http, presigned, nil, dst); err == nil {
			return nil
		}
	}
	u := c.base + "/v1/jobs/" + url.PathEscape(id) + "/outputs/" + url.PathEscape(o.Name)
	return fetchURL(ctx, c.http, u, map[string]string{"Authorization": "Bearer " + c.token}, dst)
}

func (c *Client) fetchFrame(ctx context.Context, id string, index int, presigned, dst string) error {
	if presigned != "" {
		if err := fetchURL(ctx, c.http, presigned, nil, dst); err == nil {
			return nil
		}
	}
	u := c.base + "/v1/jobs/" + url.PathEscape(id) + "/frames/" + strconv.Itoa(index)
	return fetchURL(ctx, c.http, u, map[string]string{"Authorization": "Bearer " + c.token}, dst)
}

func fetchURL(ctx context.Context, hc *http.Client, u string, hdr map[string]string, dst string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: download %s: %w", dst, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("client: download %s: status %d", dst, resp.StatusCode)
	}
	tmp := dst + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("client: download %s: %w", dst, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}
