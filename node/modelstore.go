package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
)

// ErrModelNotFound is returned when neither the models folder nor the model
// store has a model.
var ErrModelNotFound = errors.New("model not found")

// manifestFile is the copy of the store's manifest kept in a cached model's
// folder; its presence means every file was downloaded and verified.
const manifestFile = ".latentfarm-model.json"

// Models finds models by name: in a local folder first (a diffusers folder
// or NAME.safetensors), then in the farm's model store in S3, downloading
// to a cache folder on first use and verifying every file's SHA-256.
type Models struct {
	// Dir is the local models folder (may be empty).
	Dir string
	// CacheDir holds models downloaded from the store (required with Store).
	CacheDir string
	// Store is the S3 client of the model store (nil: local models only).
	Store  *connect.S3Client
	Bucket string
}

// fetchLocks serializes downloads of one model into one cache folder, also
// between nodes in one process.
var fetchLocks sync.Map // cache folder -> *sync.Mutex

// Path returns the local path of model name (a folder or a .safetensors
// file), downloading it from the store if needed. A model that is nowhere
// gives an error wrapping ErrModelNotFound; a store that cannot be reached
// one wrapping ErrUnavailable.
func (m *Models) Path(ctx context.Context, name string) (string, error) {
	if !wire.ValidModelName(name) {
		return "", fmt.Errorf("node: model %q: %w (names are %s)", name, ErrModelNotFound, wire.ModelNameRule)
	}
	if p := m.local(name); p != "" {
		return p, nil
	}
	if m.Store == nil || m.CacheDir == "" {
		return "", fmt.Errorf("node: model %q: %w in %s, and the model store is off (it needs a cache folder)",
			name, ErrModelNotFound, dirOrNone(m.Dir))
	}
	return m.fetch(ctx, name)
}

// local returns the model's path in Dir, or "".
func (m *Models) local(name string) string {
	if m.Dir == "" {
		return ""
	}
	for _, p := range []string{filepath.Join(m.Dir, name), filepath.Join(m.Dir, name+".safetensors")} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// OnDisk lists the models in Dir and the complete ones in the cache.
func (m *Models) OnDisk() []string {
	seen := map[string]bool{}
	if m.Dir != "" {
		entries, _ := os.ReadDir(m.Dir)
		for _, e := range entries {
			name := e.Name()
			if !e.IsDir() {
				var ok bool
				if name, ok = strings.CutSuffix(name, ".safetensors"); !ok {
					continue
				}
			}
			if wire.ValidModelName(name) {
				seen[name] = true
			}
		}
	}
	if m.CacheDir != "" {
		entries, _ := os.ReadDir(m.cacheRoot())
		for _, e := range entries {
			if _, err := os.Stat(filepath.Join(m.cacheRoot(), e.Name(), manifestFile)); err == nil {
				seen[e.Name()] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for name := range seen {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func (m *Models) cacheRoot() string { return filepath.Join(m.CacheDir, "models") }

// fetch makes sure the store's current version of name is in the cache.
func (m *Models) fetch(ctx context.Context, name string) (string, error) {
	man, raw, err := m.manifest(ctx, name)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(m.cacheRoot(), name)
	lk, _ := fetchLocks.LoadOrStore(dir, &sync.Mutex{})
	mu := lk.(*sync.Mutex)
	mu.Lock()
	defer mu.Unlock()
	if have, err := os.ReadFile(filepath.Join(dir, manifestFile)); err == nil && bytes.Equal(have, raw) {
		return modelEntry(dir, man), nil
	}
	if err := os.MkdirAll(m.cacheRoot(), 0o755); err != nil {
		return "", fmt.Errorf("node: model cache: %w", err)
	}
	tmp, err := os.MkdirTemp(m.cacheRoot(), ".fetch-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("node: model cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range man.Files {
		if err := m.download(ctx, name, f, filepath.Join(tmp, filepath.FromSlash(f.Path))); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, manifestFile), raw, 0o644); err != nil {
		return "", fmt.Errorf("node: model cache: %w", err)
	}
	// Swap the verified folder in; an older version goes away.
	old := dir + ".old-" + randomHex(4)
	if err := os.Rename(dir, old); err == nil {
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("node: model cache: %w", err)
	}
	return modelEntry(dir, man), nil
}

// modelEntry is the path to load: the folder, or the single checkpoint file
// of a model pushed as one file.
func modelEntry(dir string, man wire.ModelManifest) string {
	if len(man.Files) == 1 && strings.HasSuffix(man.Files[0].Path, ".safetensors") && !strings.Contains(man.Files[0].Path, "/") {
		return filepath.Join(dir, man.Files[0].Path)
	}
	return dir
}

// manifest reads and checks the store's manifest of name.
func (m *Models) manifest(ctx context.Context, name string) (wire.ModelManifest, []byte, error) {
	var man wire.ModelManifest
	obj, err := m.Store.GetObject(ctx, m.Bucket, wire.ModelManifestKey(name), minio.GetObjectOptions{})
	if err != nil {
		return man, nil, fmt.Errorf("node: model store: %w: %w", ErrUnavailable, err)
	}
	defer obj.Close()
	raw, err := io.ReadAll(io.LimitReader(obj, 1<<20))
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return man, nil, fmt.Errorf("node: model %q: %w in %s or the model store", name, ErrModelNotFound, dirOrNone(m.Dir))
		}
		return man, nil, fmt.Errorf("node: model store: read manifest of %q: %w: %w", name, ErrUnavailable, err)
	}
	if err := json.Unmarshal(raw, &man); err != nil {
		return man, nil, fmt.Errorf("node: model store: manifest of %q: %w", name, err)
	}
	if len(man.Files) == 0 {
		return man, nil, fmt.Errorf("node: model store: manifest of %q lists no files", name)
	}
	for _, f := range man.Files {
		// The sum must be what download computes (lowercase hex), or the
		// node would fetch the whole file before it can refuse it.
		sumOK := len(f.SHA256) == 64 && strings.Trim(f.SHA256, "0123456789abcdef") == ""
		if !validStorePath(f.Path) || !sumOK || f.Size < 0 {
			return man, nil, fmt.Errorf("node: model store: manifest of %q: bad entry %q", name, f.Path)
		}
	}
	return man, raw, nil
}

func dirOrNone(dir string) string {
	if dir == "" {
		return "(no models folder)"
	}
	return dir
}

// validStorePath accepts relative slash paths that stay inside the model.
func validStorePath(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && path.Clean(p) == p && p != "." &&
		!strings.HasPrefix(p, "../") && p != ".." && !strings.Contains(p, "\\") && p != manifestFile
}

// download writes one file of the model to dst, checking size and SHA-256.
func (m *Models) download(ctx context.Context, name string, f wire.ModelFile, dst string) error {
	obj, err := m.Store.GetObject(ctx, m.Bucket, wire.ModelKey(name, f.Path), minio.GetObjectOptions{})
	if err != nil {
		return fmt.Errorf("node: model store: %s/%s: %w: %w", name, f.Path, ErrUnavailable, err)
	}
	defer obj.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("node: model cache: %w", err)
	}
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("node: model cache: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(obj, f.Size+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return fmt.Errorf("node: model store: %s/%s listed in the manifest but missing", name, f.Path)
		}
		return fmt.Errorf("node: model store: %s/%s: %w: %w", name, f.Path, ErrUnavailable, err)
	}
	if n != f.Size {
		return fmt.Errorf("node: model store: %s/%s: got %d bytes, manifest says %d", name, f.Path, n, f.Size)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		return fmt.Errorf("node: model store: %s/%s: sha256 %s, manifest says %s", name, f.Path, sum, f.SHA256)
	}
	return nil
}

// PushModel uploads the model at src (a diffusers folder or one
// .safetensors file) to the model store as name: every file first, then the
// manifest with sizes and SHA-256 sums, so a node never sees a manifest
// whose files are not there yet. Pickle files are refused.
func PushModel(ctx context.Context, cli *connect.S3Client, bucket, name, src string) (wire.ModelManifest, error) {
	man := wire.ModelManifest{Name: name}
	if !wire.ValidModelName(name) {
		return man, fmt.Errorf("node: push: model name %q: use %s", name, wire.ModelNameRule)
	}
	files, err := modelFiles(src)
	if err != nil {
		return man, err
	}
	dir := isDir(src)
	for _, rel := range files {
		local := src
		if dir {
			local = filepath.Join(src, filepath.FromSlash(rel))
		}
		mf, err := pushFile(ctx, cli, bucket, name, rel, local)
		if err != nil {
			return man, err
		}
		man.Files = append(man.Files, mf)
	}
	data, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return man, fmt.Errorf("node: push: %w", err)
	}
	if err := cli.PutBytes(ctx, bucket, wire.ModelManifestKey(name), data, "application/json"); err != nil {
		return man, fmt.Errorf("node: push: manifest: %w", err)
	}
	return man, nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// modelFiles lists the files of a model as slash paths relative to src (a
// single file gives its base name).
func modelFiles(src string) ([]string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("node: push: %w", err)
	}
	if !st.IsDir() {
		if !strings.EqualFold(filepath.Ext(src), ".safetensors") {
			return nil, fmt.Errorf("node: push: %s: only .safetensors files or diffusers folders can be pushed "+
				"(pickle checkpoints run code when loaded; convert them to .safetensors first)", src)
		}
		return []string{filepath.Base(src)}, nil
	}
	var out []string
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != src {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".ckpt", ".pt", ".pth", ".bin", ".pkl":
			return fmt.Errorf("node: push: %s is a pickle file (loading it runs arbitrary code); "+
				"convert it to .safetensors or remove it", p)
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("node: push: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("node: push: %s holds no files", src)
	}
	return out, nil
}

// pushFile hashes local and uploads it as file rel of model name.
func pushFile(ctx context.Context, cli *connect.S3Client, bucket, name, rel, local string) (wire.ModelFile, error) {
	mf := wire.ModelFile{Path: rel}
	f, err := os.Open(local)
	if err != nil {
		return mf, fmt.Errorf("node: push: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if mf.Size, err = io.Copy(h, f); err != nil {
		return mf, fmt.Errorf("node: push: hash %s: %w", local, err)
	}
	mf.SHA256 = hex.EncodeToString(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return mf, fmt.Errorf("node: push: %w", err)
	}
	_, err = cli.PutObject(ctx, bucket, wire.ModelKey(name, rel), f, mf.Size,
		minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return mf, fmt.Errorf("node: push: %s: %w", rel, err)
	}
	return mf, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
