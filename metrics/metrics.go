package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const ns = "tokenmq"

// Metrics is one process's metrics.
type Metrics struct {
	reg *prometheus.Registry

	connects      *prometheus.CounterVec
	validation    *prometheus.HistogramVec
	aclDenials    *prometheus.CounterVec
	disconnects   *prometheus.CounterVec
	renewals      *prometheus.CounterVec
	revocationLag prometheus.Histogram
	apiRequests   *prometheus.CounterVec
	apiDuration   *prometheus.HistogramVec
}

// New registers the metrics (and the Go and process collectors) on a new registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "connect_decisions_total",
			Help: "MQTT CONNECTs by result (accepted, refused) and reason."}, []string{"result", "reason"}),
		validation: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "token_validation_duration_seconds",
			Help:    "Time of a broker's token validation call (QueryToken over HTTP in role broker), by outcome (valid, denied, error).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 3}}, []string{"outcome"}),
		aclDenials: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "acl_denials_total",
			Help: "Operations the token ACL denied, by action (publish, subscribe, deliver)."}, []string{"action"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "token_disconnects_total",
			Help: "Clients disconnected for their token, by reason (expired, revoked, invalid_renewal)."}, []string{"reason"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "token_renewals_total",
			Help: "In-session token renewals ($SYS/uploadToken), by result (renewed, invalid, unavailable)."}, []string{"result"}),
		revocationLag: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "revocation_propagation_seconds",
			Help:    "Time from a revocation at the token service to the broker applying it.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 60}}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "api_requests_total",
			Help: "Token API requests by action and response code (OK or the error Code)."}, []string{"action", "code"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "api_request_duration_seconds",
			Help:    "Token API request handling time by action (the server side of QueryToken).",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1, 5, 30}}, []string{"action"}),
	}
	reg.MustRegister(m.connects, m.validation, m.aclDenials, m.disconnects, m.renewals, m.revocationLag, m.apiRequests, m.apiDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry, to add scrape-time metrics to.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// CounterFunc registers a counter read at scrape time.
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, f))
}

// GaugeFunc registers a gauge read at scrape time.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, f))
}

// ConnectDecision implements hook.Observer.
func (m *Metrics) ConnectDecision(result, reason string) {
	m.connects.WithLabelValues(result, reason).Inc()
}

// Validation implements hook.Observer.
func (m *Metrics) Validation(outcome string, d time.Duration) {
	m.validation.WithLabelValues(outcome).Observe(d.Seconds())
}

// ACLDenied implements hook.Observer.
func (m *Metrics) ACLDenied(action string) { m.aclDenials.WithLabelValues(action).Inc() }

// Disconnected implements hook.Observer.
func (m *Metrics) Disconnected(reason string) { m.disconnects.WithLabelValues(reason).Inc() }

// Renewal implements hook.Observer.
func (m *Metrics) Renewal(result string) { m.renewals.WithLabelValues(result).Inc() }

// RevocationApplied implements hook.Observer.
func (m *Metrics) RevocationApplied(lag time.Duration) {
	m.revocationLag.Observe(max(lag, 0).Seconds())
}

// APIRequest implements api.Observer.
func (m *Metrics) APIRequest(action, code string, d time.Duration) {
	m.apiRequests.WithLabelValues(action, code).Inc()
	m.apiDuration.WithLabelValues(action).Observe(d.Seconds())
}
