package connect

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// S3Client is a minio-go client for the store, with PutBytes for the
// farm's own uploads (frames, manifest shards, inputs).
type S3Client struct {
	*minio.Client
	put *putter // nil when the region is not known: minio-go asks the store
}

// putter sends single PUT requests signed with AWS Signature Version 4 over
// the payload's SHA-256. It derives the signing key once a day; minio-go
// derives it, and matches the key against regular expressions, for every
// request, which was most of a node's CPU per uploaded frame.
type putter struct {
	http           *http.Client
	base           string // scheme://host
	host           string
	access, secret string
	region         string
	mu             sync.Mutex
	day            string // yyyymmdd of key
	key            []byte
}

// signingKey is the day's key for region's s3 service.
func (p *putter) signingKey(day string) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.day != day {
		k := hmacSHA256([]byte("AWS4"+p.secret), day)
		k = hmacSHA256(k, p.region)
		k = hmacSHA256(k, "s3")
		p.key, p.day = hmacSHA256(k, "aws4_request"), day
	}
	return p.key
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// s3Path is an object's path, each segment encoded as S3 signs it: every
// byte but letters, digits and -._~ as %XX.
func s3Path(bucket, key string) string {
	var b strings.Builder
	b.Grow(len(bucket) + len(key) + 8)
	b.WriteByte('/')
	b.WriteString(bucket)
	b.WriteByte('/')
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// do puts data at bucket/key in one request; payload is the hex SHA-256
// of data and md5b64 its base64 MD5.
func (p *putter) do(ctx context.Context, bucket, key string, data []byte, contentType, payload, md5b64 string) error {
	path := s3Path(bucket, key)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, p.base+path, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("connect: s3 put %s: %w", key, err)
	}
	if req.URL.EscapedPath() != path {
		return fmt.Errorf("connect: s3 put %s: path %q would go out as %q", key, path, req.URL.EscapedPath())
	}
	now := time.Now().UTC()
	stamp, day := now.Format("20060102T150405Z"), now.Format("20060102")
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	h := req.Header
	h["Content-Md5"] = []string{md5b64}
	h["Content-Type"] = []string{contentType}
	h["X-Amz-Content-Sha256"] = []string{payload}
	h["X-Amz-Date"] = []string{stamp}
	const signed = "content-md5;content-type;host;x-amz-content-sha256;x-amz-date"
	canonical := "PUT\n" + path + "\n\n" +
		"content-md5:" + md5b64 + "\ncontent-type:" + contentType + "\nhost:" + p.host +
		"\nx-amz-content-sha256:" + payload + "\nx-amz-date:" + stamp + "\n\n" + signed + "\n" + payload
	scope := day + "/" + p.region + "/s3/aws4_request"
	creq := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + stamp + "\n" + scope + "\n" + hex.EncodeToString(creq[:])
	sig := hmacSHA256(p.signingKey(day), toSign)
	h["Authorization"] = []string{"AWS4-HMAC-SHA256 Credential=" + p.access + "/" + scope +
		", SignedHeaders=" + signed + ", Signature=" + hex.EncodeToString(sig)}
	resp, err := p.http.Do(req)
	if err != nil {
		return fmt.Errorf("connect: s3 put %s: %w", key, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	// An S3 error, in the form minio-go gives its own (minio.ToErrorResponse).
	er := minio.ErrorResponse{StatusCode: resp.StatusCode, BucketName: bucket, Key: key}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if xml.Unmarshal(body, &er) != nil || er.Code == "" {
		er.Code, er.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(body))
	}
	er.StatusCode = resp.StatusCode
	return er
}
