// Package api implements tokenmq's HTTP token API: the Alibaba Cloud RPC
// actions ApplyToken, QueryToken, RevokeToken and ListTokens (signature
// version 1.0, API version 2020-04-20) and URocketMQ's GetURocketMQToken
// (UCloud signature), with access keys, roles, replay protection and
// per-key rate limits; and Client, which calls them.
//
// Every error maps to an (HTTP status, Code) pair in one table (errors.go);
// error bodies carry only string fields, because the Alibaba Go SDK panics
// on anything else.
package api
