package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// ErrStop, returned by an Events callback, ends the stream without error.
var ErrStop = errors.New("client: stop")

// Events streams a job's events to fn until the job ends (the end event is
// delivered), fn returns an error (ErrStop ends quietly), or ctx ends. A
// broken stream is reopened, so a coordinator restart or failover only
// pauses it.
func (c *Client) Events(ctx context.Context, id string, fn func(wire.JobEvent) error) error {
	base := c.base
	failures := 0
	for {
		ended, err := c.eventsOnce(ctx, base, id, fn)
		switch {
		case errors.Is(err, ErrStop):
			return nil
		case ended:
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		}
		var ae *APIError
		if errors.As(err, &ae) {
			if ae.Code == wire.CodeNotLeader && ae.Leader != "" {
				base = strings.TrimRight(ae.Leader, "/")
			} else if ae.Code != wire.CodeNotLeader && ae.Code != wire.CodeUnavailable {
				return err
			}
		}
		failures++
		if failures > 1 && base != c.base {
			base = c.base // the leader we were sent to went away: ask again
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Duration(failures)*250*time.Millisecond, 3*time.Second)):
		}
	}
}

// eventsOnce reads one stream; ended reports that the end event arrived.
func (c *Client) eventsOnce(ctx context.Context, base, id string, fn func(wire.JobEvent) error) (ended bool, err error) {
	resp, err := c.send(ctx, http.MethodGet, base+"/v1/jobs/"+url.PathEscape(id)+"/events", nil, "text/event-stream")
	if err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, decode(resp, nil)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "data:"):
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		case line == "" && data.Len() > 0:
			var ev wire.JobEvent
			if err := json.Unmarshal([]byte(data.String()), &ev); err != nil {
				return false, fmt.Errorf("client: bad event: %w", err)
			}
			data.Reset()
			if err := fn(ev); err != nil {
				return true, err
			}
			if ev.Type == wire.EventEnd {
				return true, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("client: event stream: %w", err)
	}
	return false, errors.New("client: event stream closed")
}

// Wait blocks until the job finishes and returns its final status.
func (c *Client) Wait(ctx context.Context, id string) (wire.JobStatus, error) {
	var last wire.JobStatus
	err := c.Events(ctx, id, func(ev wire.JobEvent) error {
		if ev.Job != nil {
			last = *ev.Job
		}
		return nil
	})
	if err != nil {
		return last, err
	}
	if !wire.JobFinished(last.State) {
		return c.Job(ctx, id, TasksNone)
	}
	return last, nil
}
