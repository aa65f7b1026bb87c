package main

import (
	"fmt"
	"io"
	"time"

	"github.com/tokenmq/tokenmq/broker"
	"github.com/tokenmq/tokenmq/config"
)

// `tokenmq serve --dev`: tokenmq as a stand-in for ApsaraMQ for MQTT in an
// application's own tests, in any language (Go tests have tokenmqtest).

// The dev key: fixed, so that a test script can hard-code it. --dev only.
const (
	devKeyID     = "LTAIdevtokenmq"
	devKeySecret = "tokenmq-dev-secret"
)

// devConfig is --dev's configuration; flags given on the command line win.
func devConfig(c *config.Config) {
	c.Role = config.RoleAll
	c.APIAddr, c.MQTTAddr, c.WSAddr = "127.0.0.1:8080", "127.0.0.1:1883", "127.0.0.1:8083"
	if c.TLSAddr != "" {
		c.TLSAddr = "127.0.0.1:8883"
	}
	c.Tokens.MinTTL = time.Second
	c.Broker.ExpireNotice = 5 * time.Second
	c.API.RateLimits = config.RateLimits{}
}

// printDevBanner says where everything is and the key to use.
func printDevBanner(w io.Writer, srv *broker.Server, cfg config.Config) {
	ws := "off"
	if a := srv.MQTTAddr("ws"); a != "" {
		ws = "ws://" + a + "/mqtt"
	}
	fmt.Fprintf(w, `tokenmq dev server (for tests: nothing here is for production)
  token API   http://%s   instance %s
  MQTT        %s
  WebSocket   %s
  access key  %s / %s (admin)
  tokens from 1 s; $SYS/tokenExpireNotice 5 s before expiry; data in %s (removed at exit unless --data-dir)
  export TOKENMQ_ENDPOINT=http://%s TOKENMQ_ACCESS_KEY_ID=%s TOKENMQ_ACCESS_KEY_SECRET=%s
`, srv.APIAddr(), cfg.InstanceID, srv.MQTTAddr("tcp"), ws, devKeyID, devKeySecret, cfg.DataDir,
		srv.APIAddr(), devKeyID, devKeySecret)
}
