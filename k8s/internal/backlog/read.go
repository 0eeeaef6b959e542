package backlog

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/latentfarm/latentfarm/shared/wire"
	"sigs.k8s.io/yaml"
)

// The labels a pool's kustomization puts on its objects.
const (
	PoolLabel  = "latentfarm.io/pool"
	ClassLabel = "latentfarm.io/class"
)

// poolsDir holds one folder per pool.
const poolsDir = "pools"

// kustomization is the part of a kustomization.yaml the generator reads.
type kustomization struct {
	Resources []string `json:"resources"`
	Labels    []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
}

// ReadPools returns the pools the overlay in dir deploys: the folders under
// pools/ that its kustomization reaches through resources, read from their
// kustomization.yaml rather than built, so that a pool whose generated patch
// does not exist yet is found too. root is the k8s folder; dir and every
// Pool.Dir are relative to it, slash-separated.
func ReadPools(root, dir string) ([]Pool, error) {
	var pools []Pool
	seen := map[string]bool{}
	var walk func(dir string) error
	walk = func(dir string) error {
		k, err := readKustomization(root, dir)
		if err != nil {
			return err
		}
		if path.Dir(dir) == poolsDir {
			labels := map[string]string{}
			for _, l := range k.Labels {
				for key, v := range l.Pairs {
					labels[key] = v
				}
			}
			name, class := labels[PoolLabel], labels[ClassLabel]
			if name == "" || class == "" {
				return fmt.Errorf("backlog: %s/kustomization.yaml: a pool needs the labels %s and %s", dir, PoolLabel, ClassLabel)
			}
			p, err := newPool(name, dir, wire.Class(class))
			if err != nil {
				return err
			}
			pools = append(pools, p)
			return nil
		}
		for _, r := range k.Resources {
			sub := path.Clean(path.Join(dir, r))
			if sub == ".." || strings.HasPrefix(sub, "../") {
				return fmt.Errorf("backlog: %s: resource %q lies outside the k8s folder", dir, r)
			}
			fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(sub)))
			if err != nil {
				return fmt.Errorf("backlog: %s: resource %q: %w", dir, r, err)
			}
			if !fi.IsDir() || seen[sub] {
				continue
			}
			seen[sub] = true
			if err := walk(sub); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(path.Clean(dir)); err != nil {
		return nil, err
	}
	return pools, nil
}

// readKustomization reads dir/kustomization.yaml.
func readKustomization(root, dir string) (*kustomization, error) {
	file := path.Join(dir, "kustomization.yaml")
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
	if err != nil {
		return nil, fmt.Errorf("backlog: %w", err)
	}
	var k kustomization
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("backlog: %s: %w", file, err)
	}
	return &k, nil
}
