package connect

import "github.com/latentfarm/latentfarm/shared/wire"

// JoinConfigs are the configs a node joining with t connects with: its own
// logins, replies on its own inbox prefix (the only inboxes it may read),
// and the token's CA, when it has one, to verify every server.
func JoinConfigs(t wire.JoinToken) (NATSConfig, EtcdConfig, S3Config) {
	ca := TLSFiles{CA: t.CA}
	return NATSConfig{URL: t.NATSURL, User: t.NATSUser, Password: t.NATSPassword,
			InboxPrefix: wire.InboxPrefix(t.NATSUser), TLS: ca},
		EtcdConfig{Endpoints: append([]string(nil), t.EtcdEndpoints...), User: t.EtcdUser, Password: t.EtcdPassword, TLS: ca},
		S3Config{Endpoint: t.S3Endpoint, AccessKey: t.S3AccessKey, SecretKey: t.S3SecretKey,
			Bucket: t.S3Bucket, Region: t.S3Region, TLS: ca}
}
