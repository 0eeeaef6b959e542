package localfarm

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/connect"
)

// localNodes are the nodes this farm runs in-process.
type localNodes struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errc   chan error // the first node that stopped by itself

	mu   sync.Mutex
	errs []error
}

// startNodes builds and starts opts.Nodes nodes named local-1, local-2, ...
// They run under their own context so the farm can drain them before the
// coordinator and the servers stop.
func (f *Farm) startNodes(ctx context.Context) (*localNodes, error) {
	o := f.opts
	nodes := make([]*node.Node, 0, o.Nodes)
	// The local nodes log in as their join token's login, at the local
	// addresses.
	nc, ec, sc := connect.JoinConfigs(f.local)
	nc.URL, ec.Endpoints, sc.Endpoint = f.nats.URL(), f.etcd.Endpoints(), f.s3.Endpoint()
	for i := range o.Nodes {
		no := node.Options{
			ID:           fmt.Sprintf("%s-%d", localTokenName, i+1),
			Labels:       map[string]string{"farm": "local"},
			NATS:         nc,
			Etcd:         ec,
			S3:           sc,
			RendererName: o.Renderer,
			ModelsDir:    o.ModelsDir,
			CacheDir:     f.path("cache"),
			Logger:       o.Logger,
		}
		if o.ConfigureNode != nil {
			o.ConfigureNode(i, &no)
		}
		n, err := node.New(no)
		if err != nil {
			return nil, fmt.Errorf("localfarm: %w", err)
		}
		nodes = append(nodes, n)
	}
	nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ln := &localNodes{cancel: cancel, errc: make(chan error, len(nodes))}
	for _, n := range nodes {
		ln.wg.Add(1)
		go func() {
			defer ln.wg.Done()
			err := n.Run(nctx)
			if nctx.Err() == nil {
				// A node stopped while the farm runs: that ends the farm.
				ln.errc <- fmt.Errorf("localfarm: node %s: %w", n.ID(), orStopped(err))
				return
			}
			if err != nil {
				ln.mu.Lock()
				ln.errs = append(ln.errs, fmt.Errorf("localfarm: node %s: %w", n.ID(), err))
				ln.mu.Unlock()
			}
		}()
	}
	return ln, nil
}

// failed delivers the first node that stopped by itself.
func (n *localNodes) failed() <-chan error { return n.errc }

// stop drains every node (each finishes or returns its task and
// deregisters) and waits for them.
func (n *localNodes) stop() error {
	n.cancel()
	n.wg.Wait()
	n.mu.Lock()
	defer n.mu.Unlock()
	return errors.Join(n.errs...)
}
