package e2e

import (
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/config"
)

// brokerTests are the tests of SPEC §3 that every broker under test runs:
// tokenmq's own (TestName) and Mosquitto with tokenmq's plugin
// (TestMosquittoPlugin/Name). Where Mosquitto cannot answer as tokenmq
// does, the test asks env (refused5, kicked5, uploadTopic…) or says so.
var brokerTests = []struct {
	name string
	opts []envOption
	run  func(*testing.T, *env)
}{
	{"ConnectCredentials", []envOption{}, testConnectCredentials},
	{"ExpiredTokenRefused", []envOption{shortTTL}, testExpiredTokenRefused},
	{"PlainFormCanBeTurnedOff", []envOption{func(c *config.Config) { c.Broker.AllowPlainToken = false }}, testPlainFormCanBeTurnedOff},
	{"EmptyPasswordIsBadCredentials", []envOption{}, testEmptyPasswordIsBadCredentials},
	{"ACLMQTT5", []envOption{}, testACLMQTT5},
	{"ACLMQTT311", []envOption{}, testACLMQTT311},
	{"RetainedMessagesRespectACL", []envOption{}, testRetainedMessagesRespectACL},
	{"WillOutsideRightsRefused", []envOption{}, testWillOutsideRightsRefused},
	{"RenewalKeepsClientAlive", []envOption{shortTTL, withNotice(1500 * time.Millisecond)}, testRenewalKeepsClientAlive},
	{"ExpiryDisconnects", []envOption{shortTTL, withNotice(0)}, testExpiryDisconnects},
	{"RevocationDisconnects", []envOption{}, testRevocationDisconnects},
	{"InvalidRenewalDisconnects", []envOption{}, testInvalidRenewalDisconnects},
	{"RenewalPrunesSubscriptions", []envOption{}, testRenewalPrunesSubscriptions},
	{"NoWillAfterKick", []envOption{shortTTL}, testNoWillAfterKick},
	{"MQTT5ReAuthentication", []envOption{shortTTL, withNotice(1500 * time.Millisecond)}, testMQTT5ReAuthentication},
	{"OfflineQueueDeliveredOnResume", nil, testOfflineQueueDeliveredOnResume},
	{"ResumeWithForeignTokenGetsNothing", nil, testResumeWithForeignTokenGetsNothing},
	{"TakeoverGetsNoInflight", nil, testTakeoverGetsNoInflight},
	{"OfflineQueueStopsWithItsToken", []envOption{shortTTL}, testOfflineQueueStopsWithItsToken},
	{"ClientBoundToken", nil, testClientBoundTokenE2E},
	{"ClientIDPlaceholder", nil, testClientIDPlaceholderE2E},
	{"TakeoverByTokenBoundElsewhereRefused", nil, testTakeoverByTokenBoundElsewhereRefused},
	{"KickClient", nil, testKickClient},
}

// TestMosquittoPlugin runs brokerTests against a real Mosquitto loading
// cmd/tokenmq-mosquitto (SPEC §6.3).
func TestMosquittoPlugin(t *testing.T) {
	needMosquittoPlugin(t)
	for _, bt := range brokerTests {
		t.Run(bt.name, func(t *testing.T) { bt.run(t, startMosquittoEnv(t, nil, bt.opts...)) })
	}
}
