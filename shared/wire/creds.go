package wire

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// CredentialsFile is the name of the credentials file in a farm data dir.
const CredentialsFile = "credentials.json"

// DefaultDataDir is the data dir of `farm up` when FARM_DATA is unset.
const DefaultDataDir = "farm-data"

// Credentials are the endpoints and secrets of a farm, written by `farm up`
// (mode 0600) and read by the CLI and by nodes joining the farm.
type Credentials struct {
	CoordinatorURL string   `json:"coordinator_url"`
	Token          string   `json:"token"`
	NATSURL        string   `json:"nats_url"`
	NATSUser       string   `json:"nats_user,omitempty"`
	NATSPassword   string   `json:"nats_password,omitempty"`
	NATSToken      string   `json:"nats_token,omitempty"`
	EtcdEndpoints  []string `json:"etcd_endpoints"`
	EtcdUser       string   `json:"etcd_user,omitempty"`
	EtcdPassword   string   `json:"etcd_password,omitempty"`
	S3Endpoint     string   `json:"s3_endpoint"`
	S3AccessKey    string   `json:"s3_access_key"`
	S3SecretKey    string   `json:"s3_secret_key"`
	S3Bucket       string   `json:"s3_bucket"`
	S3Region       string   `json:"s3_region,omitempty"`
	S3UseTLS       bool     `json:"s3_use_tls,omitempty"`
	// CA is the PEM certificate of the farm's own CA when its servers serve
	// TLS (farm up --tls): clients verify every server against it.
	CA string `json:"ca,omitempty"`
}

// DataDir returns $FARM_DATA, or DefaultDataDir.
func DataDir() string {
	if d := os.Getenv("FARM_DATA"); d != "" {
		return d
	}
	return DefaultDataDir
}

// ReadCredentials reads CredentialsFile from dir.
func ReadCredentials(dir string) (Credentials, error) {
	var c Credentials
	data, err := os.ReadFile(filepath.Join(dir, CredentialsFile))
	if err != nil {
		return c, fmt.Errorf("wire: credentials: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("wire: credentials %s: %w", filepath.Join(dir, CredentialsFile), err)
	}
	return c, nil
}

// WriteCredentials writes c to CredentialsFile in dir with mode 0600.
func WriteCredentials(dir string, c Credentials) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("wire: credentials: %w", err)
	}
	path := filepath.Join(dir, CredentialsFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("wire: credentials: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("wire: credentials: %w", err)
	}
	return nil
}
