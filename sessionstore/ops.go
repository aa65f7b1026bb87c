package sessionstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Op is one write: build it with PutSession, DeleteSession, PutSubscription,
// DeleteSubscription, PutMessage, MarkMessage, DeleteMessage, PutRetained or
// DeleteRetained.
type Op struct {
	apply func(tx *bolt.Tx) error
}

// PutSession stores a session (replacing it).
func PutSession(ss Session) Op {
	v, err := json.Marshal(ss)
	return Op{func(tx *bolt.Tx) error {
		if err != nil {
			return err
		}
		return tx.Bucket(bucketSessions).Put([]byte(ss.ClientID), v)
	}}
}

// DeleteSession removes a session with its subscriptions and messages.
func DeleteSession(clientID string) Op {
	return Op{func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketSessions).Delete([]byte(clientID)); err != nil {
			return err
		}
		prefix := clientKey(clientID)
		for _, name := range [][]byte{bucketSubscriptions, bucketMessages} {
			b := tx.Bucket(name)
			var keys [][]byte // collected first: deleting under a moving cursor skips keys
			c := b.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	}}
}

// PutSubscription stores a subscription (replacing one of the same filter).
func PutSubscription(sub Subscription) Op {
	v, err := json.Marshal(sub)
	return Op{func(tx *bolt.Tx) error {
		if err != nil {
			return err
		}
		return tx.Bucket(bucketSubscriptions).Put(subscriptionKey(sub.ClientID, sub.Filter), v)
	}}
}

// DeleteSubscription removes one subscription.
func DeleteSubscription(clientID, filter string) Op {
	return Op{func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSubscriptions).Delete(subscriptionKey(clientID, filter))
	}}
}

// PutMessage stores a message for a session.
func PutMessage(m Message) Op {
	v := encodeMessage(&m)
	return Op{func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMessages).Put(messageKey(m.ClientID, m.Seq), v)
	}}
}

// MarkMessage records a message's packet ID and state; a message that is
// gone already stays gone.
func MarkMessage(clientID string, seq uint64, packetID uint16, state byte) Op {
	return Op{func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMessages)
		k := messageKey(clientID, seq)
		old := b.Get(k)
		if old == nil {
			return nil
		}
		if len(old) < headerLen {
			return fmt.Errorf("%w: message record of %d bytes", ErrDamaged, len(old))
		}
		v := bytes.Clone(old)
		binary.BigEndian.PutUint16(v[offPacketID:], packetID)
		v[offState] = state
		return b.Put(k, v)
	}}
}

// DeleteMessage removes a session's message.
func DeleteMessage(clientID string, seq uint64) Op {
	return Op{func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMessages).Delete(messageKey(clientID, seq))
	}}
}

// PutRetained stores the retained message of m.Topic (replacing it).
func PutRetained(m Message) Op {
	v := encodeMessage(&m)
	return Op{func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRetained).Put([]byte(m.Topic), v)
	}}
}

// DeleteRetained removes the retained message of a topic.
func DeleteRetained(topic string) Op {
	return Op{func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRetained).Delete([]byte(topic))
	}}
}
