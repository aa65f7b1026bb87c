// Package token implements tokenmq's tokens: their records, the opaque
// token strings handed to devices, and the Service that applies for,
// queries, lists and revokes them on top of a Store.
//
// A token string carries a random 128-bit token ID, the token's expiry and an
// HMAC-SHA256 tag made with a server key. The store keeps the record under the
// ID but never the token: a stolen store file without the key file cannot be
// turned into a working token, yet an administrator's Display request can
// rebuild the token from its record. A forged or altered token fails the MAC
// check before the store is touched.
package token
