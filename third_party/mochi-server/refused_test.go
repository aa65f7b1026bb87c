package mqtt

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestSubscribeRefusedByHook: a filter a hook marked Refused is answered
// with that code (0x80 for MQTT 3.1.1), is not subscribed, and reaches
// OnSubscribed with its code; the others are granted as usual.
func TestSubscribeRefusedByHook(t *testing.T) {
	for _, tc := range []struct {
		version byte
		want    byte
	}{{5, packets.ErrQuotaExceeded.Code}, {4, packets.ErrUnspecifiedError.Code}} {
		s := newServer()
		cl, r, w := newTestClient()
		cl.Properties.ProtocolVersion = tc.version
		pk := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
			PacketID:    7,
			Filters: packets.Subscriptions{
				{Filter: "a/granted", Qos: 1},
				{Filter: "a/refused", Qos: 1, Refused: packets.ErrQuotaExceeded.Code},
			},
		}
		go func() {
			_ = s.processSubscribe(cl, pk)
			_ = w.Close()
		}()
		buf, err := io.ReadAll(r)
		require.NoError(t, err)
		require.Equal(t, []byte{1, tc.want}, buf[len(buf)-2:], "SUBACK codes, MQTT version %d", tc.version)
		require.Contains(t, s.Topics.Subscribers("a/granted").Subscriptions, cl.ID)
		require.NotContains(t, s.Topics.Subscribers("a/refused").Subscriptions, cl.ID)
		_, subscribed := cl.State.Subscriptions.Get("a/refused")
		require.False(t, subscribed)
	}
}
