// Package sessionstore keeps a broker's state on disk (SPEC §3.6): its
// persistent sessions with the token grants their rights came from, their
// subscriptions, the messages queued or in flight for them, and retained
// messages. One bbolt file per broker process, beside the token store in
// the data directory.
//
// Writes are group-committed: every Write waits for the fsync of the
// transaction that holds it, and writes that arrive while a transaction is
// being committed share the next one, so that many publishers pay for few
// fsyncs and a lone publisher pays for one. WriteAsync queues writes whose
// loss in a crash costs at most a duplicate delivery (acknowledgements,
// packet IDs).
//
// The package knows no broker: the Mochi adapter (package hook) translates
// Mochi's packets to these records.
package sessionstore
