package connect

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says how to reach the S3-compatible store and which bucket the
// farm uses.
type S3Config struct {
	// Endpoint is host:port, or a URL whose scheme sets UseTLS.
	Endpoint  string   `json:"endpoint"`
	AccessKey string   `json:"access_key"`
	SecretKey string   `json:"secret_key"`
	Bucket    string   `json:"bucket"`
	Region    string   `json:"region,omitempty"`
	UseTLS    bool     `json:"use_tls,omitempty"`
	TLS       TLSFiles `json:"tls,omitzero"`
}

// Validate reports a config that cannot work.
func (c S3Config) Validate() error {
	var missing []string
	if c.Endpoint == "" {
		missing = append(missing, "endpoint")
	}
	if c.Bucket == "" {
		missing = append(missing, "bucket")
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		missing = append(missing, "access and secret key")
	}
	if len(missing) > 0 {
		return fmt.Errorf("connect: s3: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// hostAndTLS splits Endpoint into host:port and whether to use TLS.
func (c S3Config) hostAndTLS() (string, bool, error) {
	if !strings.Contains(c.Endpoint, "://") {
		return c.Endpoint, c.UseTLS || c.TLS.Enabled(), nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return "", false, fmt.Errorf("connect: s3 endpoint: %w", err)
	}
	switch u.Scheme {
	case "http":
		return u.Host, false, nil
	case "https":
		return u.Host, true, nil
	}
	return "", false, fmt.Errorf("connect: s3 endpoint %q: scheme must be http or https", c.Endpoint)
}

// S3 opens a client for the store. It does not talk to the server.
func S3(c S3Config) (*S3Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	host, secure, err := c.hostAndTLS()
	if err != nil {
		return nil, err
	}
	opts := &minio.Options{
		Creds:  credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""),
		Secure: secure,
		Region: c.Region,
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("connect: s3 transport: %w", err)
	}
	if c.TLS.Enabled() {
		tc, err := c.TLS.Config()
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
	}
	opts.Transport = statedLength{tr}
	cli, err := minio.New(host, opts)
	if err != nil {
		return nil, fmt.Errorf("connect: s3 %s: %w", host, err)
	}
	s := &S3Client{Client: cli}
	if c.Region != "" {
		scheme := "http"
		if secure {
			scheme = "https"
		}
		s.put = &putter{http: &http.Client{Transport: tr}, base: scheme + "://" + host, host: host,
			access: c.AccessKey, secret: c.SecretKey, region: c.Region}
	}
	return s, nil
}

// EnsureBucket creates the bucket when it does not exist.
func EnsureBucket(ctx context.Context, cli *S3Client, bucket, region string) error {
	ok, err := cli.BucketExists(ctx, bucket)
	if err != nil {
		return fmt.Errorf("connect: s3 bucket %s: %w", bucket, err)
	}
	if ok {
		return nil
	}
	err = cli.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: region})
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && (er.Code == "BucketAlreadyOwnedByYou" || er.Code == "BucketAlreadyExists") {
			return nil
		}
		return fmt.Errorf("connect: s3 make bucket %s: %w", bucket, err)
	}
	return nil
}

// statedLengthMax is the most of a body of unknown length that statedLength
// reads ahead to give it a Content-Length.
const statedLengthMax = 64 << 10

// statedLength sends a small body of unknown length with a Content-Length
// instead of chunked transfer encoding. minio-go uploads an empty object over
// plain HTTP as a signed aws-chunked body of unknown length; S3 servers that
// stream request bodies (the embedded gateway) leave the chunked framing of
// such a body in the connection, and on a kept-alive connection the next
// request then reads a 400 answer to those leftover bytes. A stated length
// lets the server read the body whole. Bodies longer than statedLengthMax
// are sent chunked as before.
type statedLength struct{ next http.RoundTripper }

func (s statedLength) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength != 0 {
		return s.next.RoundTrip(req)
	}
	head, err := io.ReadAll(io.LimitReader(req.Body, statedLengthMax+1))
	if err != nil {
		req.Body.Close()
		return nil, err
	}
	r := req.Clone(req.Context())
	if len(head) <= statedLengthMax {
		req.Body.Close()
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(head)), int64(len(head))
		r.TransferEncoding = nil
	} else {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), req.Body), req.Body}
	}
	return s.next.RoundTrip(r)
}

// putBytesOnce is the largest object PutBytes sends as one signed request;
// larger ones go as minio-go's multipart upload.
const putBytesOnce = 16 << 20

// PutBytes writes data to bucket/key. Up to putBytesOnce it sends one
// request whose signature covers the payload's SHA-256 and which carries
// its MD5, so the server checks both: signed here (putter) when the region
// is known, else by minio-go. minio-go's own PutObject would, over plain
// HTTP, sign the body chunk by chunk with a 64 KiB buffer per call: for a
// small frame that buffer was half of what a node allocated.
func (c *S3Client) PutBytes(ctx context.Context, bucket, key string, data []byte, contentType string) error {
	opts := minio.PutObjectOptions{ContentType: contentType}
	if len(data) > putBytesOnce {
		_, err := c.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), opts)
		return err
	}
	sha, sum := sha256.Sum256(data), md5.Sum(data)
	payload, md5b64 := hex.EncodeToString(sha[:]), base64.StdEncoding.EncodeToString(sum[:])
	if c.put != nil {
		return c.put.do(ctx, bucket, key, data, contentType, payload, md5b64)
	}
	// DisableContentSha256 only turns off the chunked signing: the payload
	// hash given here is signed instead.
	opts.DisableContentSha256 = true
	_, err := minio.Core{Client: c.Client}.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)),
		md5b64, payload, opts)
	return err
}
