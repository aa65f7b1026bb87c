package natstest

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/tokenmq/tokenmq/config"
)

// configs/nats/ is what docker-compose's nats profile and
// scripts/nats-cluster.sh run: each node's file loads in nats-server with
// the layout SPEC §6.2 needs, and tokenmq's file loads and validates.
func TestDeploymentConfigs(t *testing.T) {
	kp, _ := nkeys.CreateAccount()
	pub, _ := kp.PublicKey()
	t.Setenv("NATS_AUTH_PASSWORD", "a-pw")
	t.Setenv("NATS_SYS_PASSWORD", "s-pw")
	t.Setenv("NATS_ISSUER", pub)
	for i := 1; i <= 3; i++ {
		t.Setenv(fmt.Sprintf("NATS_ROUTE_%d", i), fmt.Sprintf("nats-route://n%d:6222", i))
		t.Setenv(fmt.Sprintf("NATS_N%d_LISTEN", i), "0.0.0.0:4222")
		t.Setenv(fmt.Sprintf("NATS_N%d_CLUSTER", i), "0.0.0.0:6222")
		t.Setenv(fmt.Sprintf("NATS_N%d_MQTT", i), "0.0.0.0:1883")
		t.Setenv(fmt.Sprintf("NATS_N%d_STORE", i), t.TempDir())
	}
	for i := 1; i <= 3; i++ {
		o, err := server.ProcessConfigFile(filepath.Join("..", "..", "configs", "nats", fmt.Sprintf("n%d.conf", i)))
		if err != nil {
			t.Fatalf("n%d.conf: %v", i, err)
		}
		switch {
		case o.ServerName != fmt.Sprintf("n%d", i) || o.Port != 4222 || o.MQTT.Port != 1883 || o.MQTT.StreamReplicas != 3:
			t.Errorf("n%d.conf: name %q, port %d, mqtt %d replicas %d", i, o.ServerName, o.Port, o.MQTT.Port, o.MQTT.StreamReplicas)
		case !o.JetStream || o.Cluster.Name != "tokenmq" || len(o.Routes) != 3 || o.SystemAccount != SysAccount:
			t.Errorf("n%d.conf: jetstream %v, cluster %q, %d routes, system account %q", i, o.JetStream, o.Cluster.Name, len(o.Routes), o.SystemAccount)
		case o.AuthCallout == nil || o.AuthCallout.Issuer != pub || o.AuthCallout.Account != AuthAccount ||
			!slices.Contains(o.AuthCallout.AuthUsers, AuthUser) || !slices.Contains(o.AuthCallout.AuthUsers, SysUser):
			t.Errorf("n%d.conf: auth_callout %+v", i, o.AuthCallout)
		}
		users := map[string]string{}
		for _, u := range o.Users {
			users[u.Username] = u.Account.Name
		}
		if users[AuthUser] != AuthAccount || users[SysUser] != SysAccount {
			t.Errorf("n%d.conf: users %v", i, users)
		}
	}
	cfg, err := config.Load(filepath.Join("..", "..", "configs", "nats", "tokenmq.yaml"), func(k string) string {
		return map[string]string{"NATS_AUTH_PASSWORD": "a-pw", "NATS_SYS_PASSWORD": "s-pw"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n := cfg.NATS
	if n.User != AuthUser || n.SystemUser != SysUser || n.Account != MQTTAccount || n.Password != "a-pw" ||
		n.IssuerSeedFile != filepath.Join("..", "..", "configs", "nats", "issuer.nk") {
		t.Errorf("tokenmq.yaml: %+v", n)
	}
}
