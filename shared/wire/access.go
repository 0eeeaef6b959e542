package wire

// Subjects that the farm's NATS logins are held to, besides the farm's own
// (names.go): the JetStream API (nats-server's jsapi.go) and reply inboxes.
const (
	// JSAPIAll matches every JetStream API request, stream and consumer
	// management included: the coordinator's, never a node's.
	JSAPIAll = "$JS.API.>"
	// InboxAll matches the replies to clients that keep NATS's default
	// inbox prefix.
	InboxAll = "_INBOX.>"
)

// ConsumerInfoSubject is the JetStream API request for consumer's info.
func ConsumerInfoSubject(stream, consumer string) string {
	return "$JS.API.CONSUMER.INFO." + stream + "." + consumer
}

// ConsumerNextSubject is the JetStream API request a pull consumer's
// messages are fetched with.
func ConsumerNextSubject(stream, consumer string) string {
	return "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer
}

// AckSubjects matches the subjects that acknowledge (ack, nak, in
// progress, term) messages delivered by any consumer of stream.
func AckSubjects(stream string) string { return "$JS.ACK." + stream + ".>" }

// InboxPrefix is the inbox prefix of NATS login user: the replies to its
// requests come back on subjects under it, where only that login may
// subscribe, so no other login reads them.
func InboxPrefix(user string) string { return "_INBOX_" + user }

// InboxSubjects matches every inbox of InboxPrefix(user).
func InboxSubjects(user string) string { return InboxPrefix(user) + ".>" }

// etcd keys of the farm's access control, outside EtcdRoot on purpose: the
// coordinator's login reads and writes all of EtcdRoot and must not reach
// them; only the root login does.
const (
	// AuthRoot holds what farm up knows of the farm's logins.
	AuthRoot = "/latentfarm-auth/"
	// TokensPrefix holds one record per join token.
	TokensPrefix = AuthRoot + "tokens/"
	// TokensAppliedKey holds the etcd revision up to which farm up has
	// applied the token records to its logins.
	TokensAppliedKey = AuthRoot + "tokens-applied"
)

// TokenKey is the etcd key of join token name's record.
func TokenKey(name string) string { return TokensPrefix + name }
