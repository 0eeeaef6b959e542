package node

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// manifestStore is an S3 endpoint in memory that answers every GET with
// body: the model store as a node sees it, without a server.
type manifestStore struct{ body []byte }

func (s *manifestStore) RoundTrip(r *http.Request) (*http.Response, error) {
	h := http.Header{}
	h.Set("Content-Length", strconv.Itoa(len(s.body)))
	h.Set("Content-Type", "application/json")
	h.Set("ETag", `"0123456789abcdef0123456789abcdef"`)
	h.Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(s.body)), ContentLength: int64(len(s.body)), Request: r}, nil
}

// FuzzModelManifest feeds the model store's manifest of a model
// (models/<name>/model.json in S3, written by whoever pushed the model) to
// the node's manifest reader. A refused manifest is an error of the model
// store; an accepted one lists files whose paths stay inside the model's
// cache folder, with sizes a download can check and SHA-256 sums it can
// match, and the bytes kept as the cache marker are the bytes read.
// Encoded again, an accepted manifest reads the same.
func FuzzModelManifest(f *testing.F) {
	sum := strings.Repeat("0123456789abcdef", 4)
	good := wire.ModelManifest{Name: "demo", Family: "sd1", Files: []wire.ModelFile{
		{Path: "model_index.json", Size: 512, SHA256: sum},
		{Path: "unet/diffusion_pytorch_model.safetensors", Size: 3438167536, SHA256: sum},
		{Path: "tokenizer/vocab.json", Size: 1059962, SHA256: sum}}}
	b, _ := json.Marshal(good)
	f.Add(b)
	f.Add([]byte(`{"name":"v15","files":[{"path":"v1-5-pruned-emaonly.safetensors","size":4265146304,"sha256":"` + sum + `"}]}`))
	f.Add([]byte(`{"name":"x","files":[{"path":"../../etc/passwd","size":1,"sha256":"` + sum + `"}]}`))
	f.Add([]byte(`{"name":"x","files":[{"path":"a/./b","size":-1,"sha256":"` + strings.ToUpper(sum) + `"}]}`))
	store := &manifestStore{}
	cli, err := minio.New("store.invalid:9000", &minio.Options{Creds: credentials.NewStaticV4("ak", "sk", ""),
		Region: "us-east-1", Transport: store})
	if err != nil {
		f.Fatal(err)
	}
	m := &Models{CacheDir: "/cache", Store: &connect.S3Client{Client: cli}, Bucket: "farm"}
	root := filepath.Join(m.cacheRoot(), "demo")
	f.Fuzz(func(t *testing.T, data []byte) {
		store.body = data
		man, raw, err := m.manifest(context.Background(), "demo")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "node: model store: ") {
				t.Fatalf("error without its component: %v", err)
			}
			return
		}
		if !bytes.Equal(raw, data) {
			t.Fatalf("kept %d bytes of a %d-byte manifest", len(raw), len(data))
		}
		if len(man.Files) == 0 {
			t.Fatal("accepted a manifest without files")
		}
		for _, file := range man.Files {
			dst := filepath.Join(root, filepath.FromSlash(file.Path))
			rel, err := filepath.Rel(root, dst)
			if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || rel == manifestFile {
				t.Fatalf("file %q lands at %s, outside %s or on the marker", file.Path, dst, root)
			}
			if file.Size < 0 {
				t.Fatalf("file %q has size %d", file.Path, file.Size)
			}
			if strings.Trim(file.SHA256, "0123456789abcdef") != "" || len(file.SHA256) != 64 {
				t.Fatalf("file %q has sha256 %q, which no download can match", file.Path, file.SHA256)
			}
		}
		if e := modelEntry(root, man); e != root && filepath.Dir(e) != root {
			t.Fatalf("model entry %s is not the folder or a file in it", e)
		}
		b, err := json.Marshal(man)
		if err != nil {
			t.Fatalf("accepted manifest does not encode: %v", err)
		}
		store.body = b
		back, _, err := m.manifest(context.Background(), "demo")
		if err != nil || !reflect.DeepEqual(back, man) {
			t.Fatalf("%+v\nreads back as\n%+v (%v)", man, back, err)
		}
	})
}
