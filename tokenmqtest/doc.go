// Package tokenmqtest runs tokenmq in a test: what httptest is to net/http,
// a local stand-in for ApsaraMQ for MQTT's token authentication.
//
// Start(t) runs the token service and the broker in process on 127.0.0.1
// with a temporary data dir and a fresh admin key, and stops them in
// t.Cleanup. The Server it returns has the MQTT TCP and WebSocket
// addresses, the token API's endpoint (the official Alibaba Cloud SDK works
// against it with Domain and Scheme changed), the instance ID, the key, and
// helpers to apply and revoke tokens. Starting one takes tens of
// milliseconds; many run in parallel in one test binary.
//
// WithClock gives the Server a clock the test moves: Advance(d) makes
// tokens expire, sends expiry notices, disconnects at expiry and expires
// offline sessions without waiting, so "the device renews before its token
// expires" runs in milliseconds. It also lowers ApplyToken's 60 s minimum
// lifetime. With it, compute ExpireTime from Server.Now, not time.Now.
//
// Events and WaitEvent tell what the broker decided — connects accepted or
// refused with their reason and code, renewals, disconnects — so a test
// can assert "the device was refused with 0x87 because of its Will"
// without reading logs.
package tokenmqtest
