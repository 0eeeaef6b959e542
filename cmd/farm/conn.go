package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// connection is where a command finds the farm: the coordinator's API, NATS,
// etcd and S3, with their secrets and TLS files. Every command that connects
// takes its flags from connFlags, and fills it by one rule (precedence).
type connection struct {
	URL   string           // coordinator API URL (clients)
	Token string           // API bearer token: the one the coordinator takes and clients send
	API   connect.TLSFiles // TLS to an HTTPS coordinator (clients)
	NATS  connect.NATSConfig
	Etcd  connect.EtcdConfig
	S3    connect.S3Config
}

// connects says what a command connects to, and so which flags it takes.
type connects uint8

const (
	toAPI     connects = 1 << iota // the coordinator's API: --url, --token, --ca, --cert, --key
	withToken                      // serves the API: --token
	toNATS
	toEtcd
	toS3
)

// connFlags are the connection flags of one command, the --config file and
// the data dir.
type connFlags struct {
	s          *settings
	c          connection
	configFile string
	dataDir    string
	// join, when set, is the connection of farm node's join token: a layer
	// above the --config file that replaces farm up's credentials.
	join *connection
}

// configFlag describes a command's --config file.
type configFlag struct {
	env   string // its environment variable
	usage string
}

// addConnFlags defines the flags of what a command connects to. It is the
// one definition of each connection flag, its environment variable and help.
func addConnFlags(s *settings, to connects, config configFlag) *connFlags {
	f := &connFlags{s: s}
	c := &f.c
	first := len(s.binds)
	defer func() {
		for _, b := range s.binds[first:] {
			_ = s.fs.SetAnnotation(b.flag, flagGroup, []string{connectionGroup})
		}
	}()
	s.String(&f.configFile, "config", config.usage, config.env)
	addDataFlag(s, &f.dataDir, "farm up data dir whose "+wire.CredentialsFile+" gives the endpoints and secrets no other setting gives (default ./"+wire.DefaultDataDir+")")
	// farm node and farm coordinator called it --credentials, farm node
	// $FARM_CREDENTIALS.
	s.fs.StringVar(&f.dataDir, "credentials", "", "old name of --data")
	s.bind("credentials", &f.dataDir, "FARM_CREDENTIALS")
	_ = s.fs.MarkDeprecated("credentials", "use --data")
	if to&(toAPI|withToken) != 0 {
		s.String(&c.Token, "token", "API bearer token", "FARM_TOKEN")
	}
	if to&toAPI != 0 {
		s.String(&c.URL, "url", "coordinator URL, such as http://127.0.0.1:8080", "FARM_URL")
		s.String(&c.API.CAFile, "ca", "CA file that signed an HTTPS coordinator's certificate", "FARM_CA")
		s.String(&c.API.CertFile, "cert", "client certificate for mutual TLS", "FARM_CERT")
		s.String(&c.API.KeyFile, "key", "client key for mutual TLS", "FARM_KEY")
	}
	if to&toNATS != 0 {
		s.String(&c.NATS.URL, "nats-url", "NATS URL", "FARM_NATS_URL")
		s.String(&c.NATS.User, "nats-user", "NATS user", "FARM_NATS_USER")
		s.String(&c.NATS.Password, "nats-password", "NATS password", "FARM_NATS_PASSWORD")
		s.String(&c.NATS.Token, "nats-token", "NATS token", "FARM_NATS_TOKEN")
		s.String(&c.NATS.CredsFile, "nats-creds", "NATS .creds file", "FARM_NATS_CREDS")
		tlsFlags(s, "nats", "NATS", &c.NATS.TLS)
	}
	if to&toEtcd != 0 {
		s.Strings(&c.Etcd.Endpoints, "etcd", "comma-separated etcd endpoints", "FARM_ETCD_ENDPOINTS")
		s.String(&c.Etcd.User, "etcd-user", "etcd user", "FARM_ETCD_USER")
		s.String(&c.Etcd.Password, "etcd-password", "etcd password", "FARM_ETCD_PASSWORD")
		tlsFlags(s, "etcd", "etcd", &c.Etcd.TLS)
	}
	if to&toS3 != 0 {
		s.String(&c.S3.Endpoint, "s3-endpoint", "S3 endpoint, host:port or URL", "FARM_S3_ENDPOINT")
		s.String(&c.S3.AccessKey, "s3-access-key", "S3 access key", "FARM_S3_ACCESS_KEY")
		s.String(&c.S3.SecretKey, "s3-secret-key", "S3 secret key", "FARM_S3_SECRET_KEY")
		s.String(&c.S3.Bucket, "s3-bucket", "S3 bucket", "FARM_S3_BUCKET")
		s.String(&c.S3.Region, "s3-region", "S3 region", "FARM_S3_REGION")
		s.Bool(&c.S3.UseTLS, "s3-tls", "use HTTPS for a host:port S3 endpoint", "FARM_S3_TLS")
		tlsFlags(s, "s3", "S3", &c.S3.TLS)
	}
	return f
}

// addDataFlag defines --data, the farm up data dir.
func addDataFlag(s *settings, p *string, usage string) {
	s.String(p, "data", usage, "FARM_DATA")
}

// tlsFlags defines --PREFIX-ca, -cert, -key and (but for S3, whose
// --s3-tls is the endpoint's scheme) -tls.
func tlsFlags(s *settings, prefix, name string, t *connect.TLSFiles) {
	up := "FARM_" + strings.ToUpper(prefix)
	s.String(&t.CAFile, prefix+"-ca", name+" TLS CA file", up+"_CA")
	s.String(&t.CertFile, prefix+"-cert", name+" TLS client certificate", up+"_CERT")
	s.String(&t.KeyFile, prefix+"-key", name+" TLS client key", up+"_KEY")
	if prefix != "s3" {
		s.Bool(&t.Enable, prefix+"-tls", "use TLS to "+name+" with the system roots", up+"_TLS")
	}
}

// readConfig reads the --config file, if any, into v. Call it after
// settings.apply, which may take its name from the environment.
func (f *connFlags) readConfig(v any) error {
	if f.configFile == "" {
		return nil
	}
	return readConfig(f.configFile, v)
}

// resolve fills the connection from the layers below the user's: the join
// token, the config file's connection part, then farm up's credentials
// (not read at all with a join token: its logins are the node's).
func (f *connFlags) resolve(fromConfig connection) (connection, error) {
	if f.join == nil {
		creds, err := f.credentials()
		if err != nil {
			return connection{}, err
		}
		f.s.fill(&f.c, &creds)
	}
	f.s.fill(&f.c, &fromConfig)
	if f.join != nil {
		f.s.fill(&f.c, f.join)
	}
	return f.c, nil
}

// credentials is the connection farm up wrote in the data dir. A data dir
// without one is an empty layer, unless --data named it.
func (f *connFlags) credentials() (connection, error) {
	dir := cmp.Or(f.dataDir, wire.DefaultDataDir)
	c, err := wire.ReadCredentials(dir)
	if errors.Is(err, fs.ErrNotExist) && !f.s.fs.Changed("data") && !f.s.fs.Changed("credentials") {
		return connection{}, nil
	}
	if err != nil {
		return connection{}, fmt.Errorf("--data %s: %w", dir, err)
	}
	// The farm's CA, when it serves TLS, verifies every one of its servers.
	ca := connect.TLSFiles{CA: c.CA}
	return connection{
		URL: c.CoordinatorURL, Token: c.Token, API: ca,
		NATS: connect.NATSConfig{URL: c.NATSURL, User: c.NATSUser, Password: c.NATSPassword, Token: c.NATSToken, TLS: ca},
		Etcd: connect.EtcdConfig{Endpoints: c.EtcdEndpoints, User: c.EtcdUser, Password: c.EtcdPassword, TLS: ca},
		S3: connect.S3Config{Endpoint: c.S3Endpoint, AccessKey: c.S3AccessKey, SecretKey: c.S3SecretKey,
			Bucket: c.S3Bucket, Region: c.S3Region, UseTLS: c.S3UseTLS, TLS: ca},
	}, nil
}

// clientConfig is the --config file of the commands that use the API.
type clientConfig struct {
	URL   string           `json:"url,omitempty"`
	Token string           `json:"token,omitempty"`
	TLS   connect.TLSFiles `json:"tls,omitzero"`
}

// apiFlags are the flags every API command takes to find the coordinator.
type apiFlags struct{ conn *connFlags }

func addAPIFlags(s *settings) *apiFlags {
	return &apiFlags{conn: addConnFlags(s, toAPI, configFlag{env: "FARM_CONFIG",
		usage: "config file with the coordinator's url, token and tls (ca_file, cert_file, key_file)"})}
}

// endpoint resolves the coordinator's URL, token and TLS files.
func (a *apiFlags) endpoint() (connection, error) {
	if err := a.conn.s.apply(); err != nil {
		return connection{}, err
	}
	var cfg clientConfig
	if err := a.conn.readConfig(&cfg); err != nil {
		return connection{}, err
	}
	c, err := a.conn.resolve(connection{URL: cfg.URL, Token: cfg.Token, API: cfg.TLS})
	if err != nil {
		return c, err
	}
	if c.URL == "" || c.Token == "" {
		return c, fmt.Errorf("no coordinator: give --url and --token ($FARM_URL, $FARM_TOKEN), url and token in --config, "+
			"or run farm up, whose %s in the data dir (%s) has both", wire.CredentialsFile, cmp.Or(a.conn.dataDir, wire.DefaultDataDir))
	}
	return c, nil
}

// client opens a client of the coordinator's API.
func (a *apiFlags) client() (*client.Client, error) {
	c, err := a.endpoint()
	if err != nil {
		return nil, err
	}
	return client.New(client.Options{URL: c.URL, Token: c.Token, TLS: c.API})
}
