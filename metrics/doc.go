// Package metrics defines tokenmq's Prometheus metrics (SPEC §5) on a
// registry of its own, and implements the observer interfaces through
// which the hook and the API report what they do. The hot paths keep
// their own atomic counters; those are read at scrape time.
package metrics
