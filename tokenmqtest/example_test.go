package tokenmqtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/url"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/onsmqtt"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/tokenmq/tokenmq/tokenauth"
	"github.com/tokenmq/tokenmq/tokenmqtest"
)

// A backend's token issuing, tested against tokenmq with the official
// Alibaba Cloud SDK: only the endpoint differs from production. (In a test,
// tokenmqtest.Start(t) does New and Close.)
func Example_alibabaSDK() {
	s, err := tokenmqtest.New()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	client, err := onsmqtt.NewClientWithAccessKey("cn-hangzhou", s.AccessKeyID, s.AccessKeySecret)
	if err != nil {
		log.Fatal(err)
	}
	endpoint, _ := url.Parse(s.Endpoint)
	apply := onsmqtt.CreateApplyTokenRequest()
	apply.Domain, apply.Scheme = endpoint.Host, "http" // the only change
	apply.InstanceId, apply.Resources, apply.Actions = s.InstanceID, "devices/pump-7/#", "R,W"
	apply.ExpireTime = requests.NewInteger64(time.Now().Add(time.Hour).UnixMilli())
	applied, err := client.ApplyToken(apply)
	if err != nil {
		log.Fatal(err)
	}

	query := onsmqtt.CreateQueryTokenRequest()
	query.Domain, query.Scheme = endpoint.Host, "http"
	query.InstanceId, query.Token = s.InstanceID, applied.Token
	queried, err := client.QueryToken(query)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("token status:", queried.TokenStatus)
	// Output: token status: true
}

// A device that renews its token when the broker says it is about to
// expire, tested in milliseconds: the clock is advanced past the notice and
// past the first token's expiry.
func ExampleServer_Advance() {
	s, err := tokenmqtest.New(tokenmqtest.WithClock(), tokenmqtest.WithExpireNotice(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	first, err := s.Apply(10*time.Minute, "R,W", "devices/pump-7/#")
	if err != nil {
		log.Fatal(err)
	}

	// The device: on $SYS/tokenExpireNotice it gets a new token from its
	// backend and uploads it on $SYS/uploadToken.
	conn, err := net.Dial("tcp", s.MQTT)
	if err != nil {
		log.Fatal(err)
	}
	var device *paho.Client
	device = paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			if pr.Packet.Topic != "$SYS/tokenExpireNotice" {
				return true, nil
			}
			fmt.Println("expire notice received")
			go func() {
				next, err := s.Apply(time.Hour, "R,W", "devices/pump-7/#")
				if err != nil {
					log.Fatal(err)
				}
				body, _ := json.Marshal(map[string]string{"token": next, "type": "RW"})
				if _, err := device.Publish(context.Background(), &paho.Publish{Topic: "$SYS/uploadToken", QoS: 1, Payload: body}); err != nil {
					log.Fatal(err)
				}
			}()
			return true, nil
		}},
	})
	if _, err := device.Connect(context.Background(), &paho.Connect{ClientID: "pump-7", KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: "pump-7", PasswordFlag: true, Password: []byte(first)}); err != nil {
		log.Fatal(err)
	}

	s.Advance(9*time.Minute + time.Second) // past the notice
	if e, err := s.WaitEvent(5*time.Second, func(e tokenauth.Event) bool { return e.Kind == "renewal" }); err != nil || e.Result != "renewed" {
		log.Fatal(e, err)
	}
	fmt.Println("renewed")
	s.Advance(5 * time.Minute) // past the first token's expiry
	_, err = device.Publish(context.Background(), &paho.Publish{Topic: "devices/pump-7/up", QoS: 1, Payload: []byte("42")})
	fmt.Println("publishing after the first token expired:", err == nil)
	_ = device.Disconnect(&paho.Disconnect{})
	// Output:
	// expire notice received
	// renewed
	// publishing after the first token expired: true
}
