// Package client is the Go client of the coordinator's HTTP API, used by the
// CLI and by tests. It must never talk to NATS, etcd or S3 directly, except
// to download frames through URLs the coordinator presigned.
package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// Options configure a Client.
type Options struct {
	// URL is the coordinator's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// Token is the API's bearer token.
	Token string
	// TLS verifies an HTTPS coordinator (CA file, client certificate).
	TLS connect.TLSFiles
	// HTTPClient replaces the default client (its TLS settings then win).
	HTTPClient *http.Client
	// Timeout bounds each non-streaming request (default 60s).
	Timeout time.Duration
}

// Client talks to one coordinator. It is safe for concurrent use.
type Client struct {
	base    string
	token   string
	http    *http.Client
	timeout time.Duration
}

// New checks opts and returns a Client.
func New(opts Options) (*Client, error) {
	if opts.URL == "" {
		return nil, errors.New("client: coordinator url is required")
	}
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: coordinator url %q: want http(s)://host:port", opts.URL)
	}
	if opts.Token == "" {
		return nil, errors.New("client: api token is required")
	}
	hc := opts.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tc, err := opts.TLS.Config()
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		if tc != nil {
			tr.TLSClientConfig = tc
		}
		hc = &http.Client{Transport: tr}
	}
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	return &Client{base: strings.TrimRight(opts.URL, "/"), token: opts.Token, http: hc, timeout: opts.Timeout}, nil
}

// URL is the coordinator's base URL.
func (c *Client) URL() string { return c.base }

// APIError is an error response of the API.
type APIError struct {
	Status int
	wire.APIErrorBody
}

// Error implements error.
func (e *APIError) Error() string {
	// The coordinator's own errors already name it ("coordinator: no such
	// job"): say it once.
	return fmt.Sprintf("coordinator: %s (%d %s)", strings.TrimPrefix(e.Message, "coordinator: "), e.Status, e.Code)
}

// IsCode reports whether err is an APIError with code.
func IsCode(err error, code wire.Code) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// do sends a request and decodes a JSON response into out. A not_leader
// answer naming another leader is retried there once.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	base := c.base
	for try := 0; ; try++ {
		resp, err := c.send(ctx, method, base+path, body, "application/json")
		if err != nil {
			return err
		}
		err = decode(resp, out)
		var ae *APIError
		if try == 0 && errors.As(err, &ae) && ae.Code == wire.CodeNotLeader && ae.Leader != "" && ae.Leader != base {
			base = strings.TrimRight(ae.Leader, "/")
			continue
		}
		return err
	}
}

func (c *Client) send(ctx context.Context, method, u string, body []byte, accept string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, u, err)
	}
	return resp, nil
}

// decode reads resp into out, or into an *APIError for a non-2xx status.
func decode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Status: resp.StatusCode}
		var body wire.APIError
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
			ae.APIErrorBody = body.Error
		} else {
			ae.Code = wire.CodeUnavailable
			ae.Message = strings.TrimSpace(string(data))
		}
		return ae
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("client: decode response: %w", err)
	}
	return nil
}

// Submit sends a job spec. An invalid spec returns an *APIError with code
// invalid_job and every field error in Fields.
func (c *Client) Submit(ctx context.Context, spec wire.JobSpec) (wire.JobStatus, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return wire.JobStatus{}, fmt.Errorf("client: encode spec: %w", err)
	}
	var out wire.SubmitResponse
	err = c.do(ctx, http.MethodPost, "/v1/jobs", body, &out)
	return out.Job, err
}

// Jobs lists jobs, newest first; state filters when not empty; limit 0
// takes the server's default.
func (c *Client) Jobs(ctx context.Context, state string, limit int) ([]wire.JobStatus, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/jobs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out wire.JobList
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Jobs, err
}

// Task list modes of Job.
const (
	TasksUnfinished = ""     // unfinished and failed tasks
	TasksAll        = "all"  // every task
	TasksNone       = "none" // no task list
)

// Job returns one job with its tasks (per mode) and why waiting tasks wait.
func (c *Client) Job(ctx context.Context, id, mode string) (wire.JobStatus, error) {
	path := "/v1/jobs/" + url.PathEscape(id)
	if mode != "" {
		path += "?tasks=" + url.QueryEscape(mode)
	}
	var out wire.JobStatus
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// Cancel cancels a job.
func (c *Client) Cancel(ctx context.Context, id string) (wire.JobStatus, error) {
	var out wire.JobStatus
	err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, &out)
	return out, err
}

// Delete removes a finished job: its frames, outputs and manifest in S3,
// and its record.
func (c *Client) Delete(ctx context.Context, id string) (wire.DeleteResponse, error) {
	var out wire.DeleteResponse
	err := c.do(ctx, http.MethodDelete, "/v1/jobs/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Nodes lists the registered nodes.
func (c *Client) Nodes(ctx context.Context) ([]wire.NodeInfo, error) {
	var out wire.NodeList
	err := c.do(ctx, http.MethodGet, "/v1/nodes", nil, &out)
	return out.Nodes, err
}

// Files returns presigned URLs of the manifest, the assembled files
// and frames from..to of a finished job (at most wire.MaxFileWindow
// frames; every index in the range gets a URL, rendered or not).
func (c *Client) Files(ctx context.Context, id string, from, to int) (wire.FileList, error) {
	var out wire.FileList
	q := url.Values{"from": {strconv.Itoa(from)}, "to": {strconv.Itoa(to)}}
	err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/files?"+q.Encode(), nil, &out)
	return out, err
}

// Manifest returns a finished job's manifest through the coordinator,
// whole and sorted by frame index.
func (c *Client) Manifest(ctx context.Context, id string) (wire.Manifest, error) {
	var out wire.Manifest
	err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/manifest", nil, &out)
	out.Sort()
	return out, err
}

// Health reports whether this coordinator leads, and the leader's URL.
func (c *Client) Health(ctx context.Context) (leader bool, leaderURL string, err error) {
	var out struct {
		Leader    bool   `json:"leader"`
		LeaderURL string `json:"leader_url"`
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.send(ctx, http.MethodGet, c.base+"/healthz", nil, "application/json")
	if err != nil {
		return false, "", err
	}
	err = decode(resp, &out)
	return out.Leader, out.LeaderURL, err
}

// Endpoint is where the coordinator's API answers, the token it takes and
// how to verify it when it serves HTTPS. Options makes a client of it.
type Endpoint struct {
	URL   string `json:"url,omitempty"`
	Token string `json:"token,omitempty"`
	// TLS verifies an HTTPS coordinator: CA and client certificate files,
	// and the farm's CA (PEM) that farm up's credentials carry.
	TLS connect.TLSFiles `json:"tls,omitzero"`
}

// Options are the options of a client of e.
func (e Endpoint) Options() Options { return Options{URL: e.URL, Token: e.Token, TLS: e.TLS} }

// Resolve finds the coordinator's URL, token and TLS files by the rule
// every farm command follows. Each comes from the first of: given (the
// command line), the environment (FARM_URL, FARM_TOKEN, FARM_CA,
// FARM_CERT, FARM_KEY), config (a config file), the credentials file that
// farm up writes in dataDir (empty: $FARM_DATA, else ./farm-data). The
// credentials' CA, the farm's when it serves TLS, is trusted besides any
// CA file. A missing or unreadable credentials file is an error only when
// the URL or the token is still missing.
func Resolve(given, config Endpoint, dataDir string) (Endpoint, error) {
	env := Endpoint{URL: os.Getenv("FARM_URL"), Token: os.Getenv("FARM_TOKEN"),
		TLS: connect.TLSFiles{CAFile: os.Getenv("FARM_CA"), CertFile: os.Getenv("FARM_CERT"), KeyFile: os.Getenv("FARM_KEY")}}
	if dataDir == "" {
		dataDir = wire.DataDir()
	}
	creds, err := wire.ReadCredentials(dataDir)
	if err != nil {
		creds = wire.Credentials{} // nothing of a damaged file
	}
	var e Endpoint
	for _, l := range []Endpoint{given, env, config,
		{URL: creds.CoordinatorURL, Token: creds.Token, TLS: connect.TLSFiles{CA: creds.CA}}} {
		e.URL = cmp.Or(e.URL, l.URL)
		e.Token = cmp.Or(e.Token, l.Token)
		e.TLS.CAFile = cmp.Or(e.TLS.CAFile, l.TLS.CAFile)
		e.TLS.CA = cmp.Or(e.TLS.CA, l.TLS.CA)
		e.TLS.CertFile = cmp.Or(e.TLS.CertFile, l.TLS.CertFile)
		e.TLS.KeyFile = cmp.Or(e.TLS.KeyFile, l.TLS.KeyFile)
		e.TLS.Enable = e.TLS.Enable || l.TLS.Enable
		e.TLS.InsecureSkipVerify = e.TLS.InsecureSkipVerify || l.TLS.InsecureSkipVerify
	}
	if e.URL != "" && e.Token != "" {
		return e, nil
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("client: no coordinator given (--url/--token, FARM_URL/FARM_TOKEN, a config file) and %w", err)
	}
	return Endpoint{}, fmt.Errorf("client: credentials in %s lack the coordinator url or token", dataDir)
}
