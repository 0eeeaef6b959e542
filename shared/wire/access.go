package wire

// Subjects that the farm's NATS logins are held to, besides the farm's own
// (names.go): the JetStream API requests they may make (nats-server's
// jsapi.go; only the admin may make the others: create, update or delete a
// stream or a consumer) and reply inboxes.
const (
	// InboxAll matches the replies to clients that keep NATS's default
	// inbox prefix.
	InboxAll = "_INBOX.>"
)

// StreamInfoSubject is the JetStream API request for stream's info.
func StreamInfoSubject(stream string) string { return "$JS.API.STREAM.INFO." + stream }

// StreamPurgeSubject is the JetStream API request that purges stream: all
// of it, or the messages of the subject the request names (a permission
// to it cannot tell them apart).
func StreamPurgeSubject(stream string) string { return "$JS.API.STREAM.PURGE." + stream }

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
