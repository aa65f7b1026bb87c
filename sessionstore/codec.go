package sessionstore

import (
	"encoding/binary"
	"fmt"
)

// Messages are stored in a compact binary form (they are written for every
// QoS 1/2 message a persistent session gets):
//
//	version(1)=1 | packet id(2) | state(1) | qos(1) | retain(1)
//	| created, expiry (2 x int64) | topic, origin, payload, properties
//	(uvarint length + bytes each)
const messageVersion = 1

// message header offsets, for MarkMessage's in-place patch.
const (
	offPacketID = 1
	offState    = 3
	headerLen   = 1 + 2 + 3 + 16
)

func encodeMessage(m *Message) []byte {
	b := make([]byte, 0, headerLen+4*binary.MaxVarintLen32+len(m.Topic)+len(m.Origin)+len(m.Payload)+len(m.Properties))
	b = append(b, messageVersion)
	b = binary.BigEndian.AppendUint16(b, m.PacketID)
	var retain byte
	if m.Retain {
		retain = 1
	}
	b = append(b, m.State, m.QoS, retain)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Created))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Expiry))
	for _, f := range [][]byte{[]byte(m.Topic), []byte(m.Origin), m.Payload, m.Properties} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

func decodeMessage(v []byte) (Message, error) {
	if len(v) < headerLen || v[0] != messageVersion || v[offState] > StatePubrel || v[4] > 2 || v[5] > 1 {
		return Message{}, fmt.Errorf("%w: malformed message record", ErrDamaged)
	}
	m := Message{
		PacketID: binary.BigEndian.Uint16(v[offPacketID:]), State: v[offState], QoS: v[4], Retain: v[5] == 1,
		Created: int64(binary.BigEndian.Uint64(v[6:])), Expiry: int64(binary.BigEndian.Uint64(v[14:])),
	}
	pos := headerLen
	field := func() ([]byte, bool) {
		n, w := binary.Uvarint(v[pos:])
		if w <= 0 || uint64(len(v)-pos-w) < n {
			return nil, false
		}
		start := pos + w
		pos = start + int(n)
		return append([]byte(nil), v[start:pos]...), true
	}
	topic, ok1 := field()
	origin, ok2 := field()
	payload, ok3 := field()
	props, ok4 := field()
	if !ok1 || !ok2 || !ok3 || !ok4 || pos != len(v) {
		return Message{}, fmt.Errorf("%w: malformed message record", ErrDamaged)
	}
	m.Topic, m.Origin, m.Payload = string(topic), string(origin), payload
	if len(props) > 0 {
		m.Properties = props
	}
	return m, nil
}

// clientKey is the prefix of a client's keys: its ID with a length in
// front, so that no client ID is a prefix of another's keys.
func clientKey(clientID string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(clientID)))
	return append(b, clientID...)
}

func messageKey(clientID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(clientKey(clientID), seq)
}

func subscriptionKey(clientID, filter string) []byte {
	return append(clientKey(clientID), filter...)
}

// splitClientKey returns the client ID of a key and the rest of it.
func splitClientKey(k []byte) (string, []byte, error) {
	n, w := binary.Uvarint(k)
	if w <= 0 || uint64(len(k)-w) < n {
		return "", nil, fmt.Errorf("%w: malformed key", ErrDamaged)
	}
	return string(k[w : w+int(n)]), k[w+int(n):], nil
}
