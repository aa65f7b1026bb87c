// Package acl implements MQTT topic-name and topic-filter validation and
// matching, exactly as MQTT 3.1.1 §4.7 and MQTT 5.0 §4.7 define them.
//
// It is pure: no I/O, no global state. Everything a token's ACL needs is
// built on the functions here.
package acl
