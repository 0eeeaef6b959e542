package client

import (
	"context"
	"encoding/json"
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
// under dir and returns the manifest. A presigned URL
// that fails falls back to the coordinator's proxy.
func (c *Client) Download(ctx context.Context, id, dir string, o DownloadOptions) (wire.Manifest, error) {
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	m, err := c.Manifest(ctx, id)
	if err != nil {
		return m, err
	}
	urls := map[string]string{}
	if !o.Proxy {
		files, err := c.Files(ctx, id)
		if err != nil {
			return m, err
		}
		for _, f := range append(files.Frames, files.Outputs...) {
			urls[f.Key] = f.URL
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "frames"), 0o755); err != nil {
		return m, fmt.Errorf("client: %w", err)
	}
	data, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), append(data, '\n'), 0o644); err != nil {
		return m, fmt.Errorf("client: %w", err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		done     int
		sem      = make(chan struct{}, o.Parallel)
	)
	for _, f := range m.Frames {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			dst := filepath.Join(dir, "frames", path.Base(f.Key))
			err := c.fetchFrame(ctx, id, f.Index, urls[f.Key], dst)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			done++
			if o.Progress != nil {
				o.Progress(done, len(m.Frames))
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return m, firstErr
	}
	for _, o := range m.Outputs {
		if err := c.fetchOutput(ctx, id, o, urls[o.Key], filepath.Join(dir, path.Base(o.Name))); err != nil {
			return m, err
		}
	}
	return m, nil
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
