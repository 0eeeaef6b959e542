package wire

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzReadCredentials feeds credentials.json bytes to ReadCredentials (a
// node joining a farm reads a file it was handed). Whatever it accepts,
// WriteCredentials writes back and ReadCredentials reads unchanged, with
// the file's mode 0600; whatever it refuses gets an error naming the file.
func FuzzReadCredentials(f *testing.F) {
	f.Add([]byte(`{"coordinator_url": "http://127.0.0.1:8080", "token": "t0k3n", "nats_url": "nats://127.0.0.1:4222",
 "nats_user": "farm", "nats_password": "pw", "etcd_endpoints": ["127.0.0.1:2379", "127.0.0.1:22379"],
 "s3_endpoint": "127.0.0.1:9000", "s3_access_key": "ak", "s3_secret_key": "sk", "s3_bucket": "farm", "s3_use_tls": true}`))
	f.Add([]byte(`{"etcd_endpoints": null, "s3_region": "us-east-1", "unknown": 1}`))
	f.Add([]byte(`{"token": "\u00e9\ud800", "etcd_endpoints": []}`))
	f.Add([]byte(`{"s3_use_tls": "yes"}`))
	dir := fuzzScratch(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, CredentialsFile)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := ReadCredentials(dir)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "wire: credentials "+path+": ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := WriteCredentials(dir, c); err != nil {
			t.Fatalf("accepted credentials do not write: %v", err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("written file: %v, %v", fi.Mode(), err)
		}
		back, err := ReadCredentials(dir)
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("%+v\nreads back as\n%+v (%v)", c, back, err)
		}
	})
}

// fuzzScratch returns a folder for the files a fuzz target rewrites on
// every execution: on tmpfs (/dev/shm) where the machine has one, since a
// disk write costs several times the parse under test, else f.TempDir().
func fuzzScratch(f *testing.F) string {
	if d, err := os.MkdirTemp("/dev/shm", "latentfarm-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return f.TempDir()
}
