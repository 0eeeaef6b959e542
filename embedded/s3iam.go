package embedded

import (
	"github.com/versity/versitygw/auth"
	"github.com/versity/versitygw/s3err"
)

// rootOnlyIAM knows one account, the root. The gateway's own single-account
// IAM answers an unknown access key with 404 XAdminUserNotFound; S3 clients
// expect 403 InvalidAccessKeyId, which auth.ErrNoSuchUser produces.
type rootOnlyIAM struct{ root auth.Account }

var _ auth.IAMService = rootOnlyIAM{}

func (rootOnlyIAM) CreateAccount(auth.Account) error {
	return s3err.GetAPIError(s3err.ErrAdminMethodNotSupported)
}

func (r rootOnlyIAM) GetUserAccount(access string) (auth.Account, error) {
	if access == r.root.Access {
		return r.root, nil
	}
	return auth.Account{}, auth.ErrNoSuchUser
}

// ResolveAccounts returns the access keys that do not exist.
func (r rootOnlyIAM) ResolveAccounts(ids []string) ([]string, error) {
	missing := []string{}
	for _, id := range ids {
		if id != r.root.Access {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

func (rootOnlyIAM) UpdateUserAccount(string, auth.MutableProps) error {
	return s3err.GetAPIError(s3err.ErrAdminMethodNotSupported)
}

func (rootOnlyIAM) DeleteUserAccount(string) error {
	return s3err.GetAPIError(s3err.ErrAdminMethodNotSupported)
}

func (rootOnlyIAM) ListUserAccounts() ([]auth.Account, error) {
	return nil, s3err.GetAPIError(s3err.ErrAdminMethodNotSupported)
}

func (rootOnlyIAM) Shutdown() error { return nil }
