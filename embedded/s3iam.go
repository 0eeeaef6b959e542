package embedded

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/versity/versitygw/auth"
	"github.com/versity/versitygw/s3err"
)

// S3Account is an access key the gateway takes besides the root's: an
// ordinary user, allowed only what the bucket's policy grants it.
type S3Account struct {
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

// WriteS3Accounts replaces the accounts file (mode 0600) that a gateway
// started with its path reads: the gateway sees the change at its next
// request.
func WriteS3Accounts(path string, accounts []S3Account) error {
	data, err := json.Marshal(accounts)
	if err != nil {
		return fmt.Errorf("%w: accounts: %w", ErrS3, err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("%w: accounts: %w", ErrS3, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%w: accounts: %w", ErrS3, err)
	}
	return nil
}

// fileIAM knows the root and the accounts of a file that another process
// rewrites (WriteS3Accounts): it reads the file again whenever it was
// replaced. The gateway's own single-account IAM answers an unknown access
// key with 404 XAdminUserNotFound; S3 clients expect 403
// InvalidAccessKeyId, which auth.ErrNoSuchUser produces.
type fileIAM struct {
	root auth.Account
	path string // "" for the root alone

	mu       sync.Mutex
	seen     fs.FileInfo // the file last read; nil: none
	accounts map[string]string
}

var _ auth.IAMService = (*fileIAM)(nil)

// load reads the file if it was replaced since the last read. A missing
// file means no accounts; an unreadable one keeps the last accounts read.
func (m *fileIAM) load() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.path == "" {
		return nil
	}
	fi, err := os.Stat(m.path)
	if errors.Is(err, fs.ErrNotExist) {
		m.seen, m.accounts = nil, nil
		return nil
	}
	if err != nil || m.seen != nil && os.SameFile(fi, m.seen) && fi.ModTime().Equal(m.seen.ModTime()) {
		return m.accounts
	}
	data, err := os.ReadFile(m.path)
	var list []S3Account
	if err != nil || json.Unmarshal(data, &list) != nil {
		return m.accounts
	}
	m.accounts = make(map[string]string, len(list))
	for _, a := range list {
		if a.AccessKey != m.root.Access && a.AccessKey != "" && a.SecretKey != "" {
			m.accounts[a.AccessKey] = a.SecretKey
		}
	}
	m.seen = fi
	return m.accounts
}

func (m *fileIAM) GetUserAccount(access string) (auth.Account, error) {
	if access == m.root.Access {
		return m.root, nil
	}
	if secret, ok := m.load()[access]; ok {
		return auth.Account{Access: access, Secret: secret, Role: auth.RoleUser}, nil
	}
	return auth.Account{}, auth.ErrNoSuchUser
}

// ResolveAccounts returns the access keys that do not exist.
func (m *fileIAM) ResolveAccounts(ids []string) ([]string, error) {
	accounts := m.load()
	missing := []string{}
	for _, id := range ids {
		if _, ok := accounts[id]; !ok && id != m.root.Access {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

// The user management API is off: accounts come from the file only.

func (*fileIAM) CreateAccount(auth.Account) error {
	return s3err.GetAPIError(s3err.ErrAdminMethodNotSupported)
}

func (*fileIAM) UpdateUserAccount(string, auth.MutableProps) error {
	return s3err.GetAPIError(s3err.ErrAdminMethodNotSupported)
}

func (*fileIAM) DeleteUserAccount(string) error {
	return s3err.GetAPIError(s3err.ErrAdminMethodNotSupported)
}

func (*fileIAM) ListUserAccounts() ([]auth.Account, error) {
	return nil, s3err.GetAPIError(s3err.ErrAdminMethodNotSupported)
}

func (*fileIAM) Shutdown() error { return nil }
