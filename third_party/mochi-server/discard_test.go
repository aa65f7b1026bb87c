package mqtt

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestDiscardSession: a persistent session is kept when its connection
// ends, unless the client was marked with DiscardSession.
func TestDiscardSession(t *testing.T) {
	s := newServer()
	for _, tc := range []struct {
		id      string
		discard bool
		kept    bool
	}{
		{"kept", false, true},
		{"discarded", true, false},
	} {
		cl, _, _ := newTestClient()
		cl.ID = tc.id
		cl.Properties.ProtocolVersion = 5
		cl.Properties.Props.SessionExpiryInterval = 3600
		cl.State.Subscriptions.Add("a/b", packets.Subscription{Filter: "a/b", Qos: 1})
		s.Topics.Subscribe(cl.ID, packets.Subscription{Filter: "a/b", Qos: 1})
		s.Clients.Add(cl)
		if tc.discard {
			cl.DiscardSession()
		}
		s.detachClient(cl, "tcp", nil)
		_, ok := s.Clients.Get(tc.id)
		require.Equal(t, tc.kept, ok, tc.id)
		require.Equal(t, tc.kept, s.Topics.Subscribers("a/b").Subscriptions[tc.id].Filter == "a/b", tc.id)
	}
}
