// Command healthcheck is the in-container probe of latentfarm's images:
// `healthcheck URL` GETs URL and exits 0 on a 2xx answer, 1 otherwise.
//
// Compose and Docker run a healthcheck as a command inside the container,
// and the coordinator and CPU-node images are FROM scratch: no shell, no
// curl, no wget. Kubernetes probes /livez with httpGet and does not need
// this. It must stay tiny and import nothing but the standard library.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// timeout bounds the whole probe; compose kills a slower one anyway.
const timeout = 3 * time.Second

func main() {
	if len(os.Args) != 2 || os.Args[1] == "-h" || os.Args[1] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: healthcheck URL   (exit 0 when GET URL answers 2xx)")
		os.Exit(2)
	}
	if err := probe(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "healthcheck: %v\n", err)
		os.Exit(1)
	}
}

func probe(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
