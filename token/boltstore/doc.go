// Package boltstore implements token.Store on an embedded bbolt file.
//
// Every write is one bbolt transaction, fsync'd before it returns; concurrent
// writes are grouped into one transaction (bbolt's Batch) so that many
// ApplyToken calls share one fsync. Layout:
//
//	tokens       id(16)                          -> record (JSON)
//	by_instance  instance 0x00 create_ms(8) id   -> nil   (ListTokens order)
//	gc           gc_ms(8) id                     -> nil   (expiry or revocation time)
//	revocations  seq(8)                          -> revocation (JSON)
//	meta         "schema"                        -> version
package boltstore
