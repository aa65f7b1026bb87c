// Package broker assembles a tokenmq process: the token store and service,
// the HTTP API with /healthz and /readyz, and (in roles all and broker) the
// MQTT broker. New does no I/O; Start returns once every listener is bound;
// Shutdown is idempotent and bounded by its context.
package broker
