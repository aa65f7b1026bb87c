package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// scenario is one measurement, run on the targets it applies to.
type scenario struct {
	name    string
	unit    string
	better  string // "higher" or "lower"
	targets []string
	// prepare makes the credentials a round needs on a target.
	prepare func(t *target, o *options) (any, error)
	// round runs one round with what prepare made.
	round func(t *target, o *options, prep any) outcome
	// fresh: prepare again before every round (credentials are used up).
	fresh bool
	// once: a single round (the memory scenario: RSS does not shrink back).
	once bool
}

type options struct {
	rounds   int
	duration time.Duration
	idle     int           // idle clients and pre-CONNECT sockets
	max      int           // clients of the -max and storm scenarios
	users    int           // Mosquitto password-file users made for them
	churn    time.Duration // connect-disconnect cycling before the churn scenario's idle clients
	revoke   int
	warm     map[string]float64 // connect-warm medians by target, to size connect-new
}

type pubPrep struct {
	pubs []cred
	sub  cred
}

var (
	allTargets = []string{"tokenmq", "tokenmq-split", "mochi-allow-all", "mosquitto", "mosquitto-plugin"}
	// persistentTargets: the durability scenario adds each broker's other
	// way of keeping sessions.
	// fleetTargets: the idle-fleet scenarios (memory, storm).
	fleetTargets      = []string{"tokenmq", "mochi-allow-all", "mosquitto", "mosquitto-plugin"}
	persistentTargets = []string{"tokenmq", "tokenmq-memory", "mochi-allow-all", "mochi-bolt", "mosquitto", "mosquitto-persist"}
	defaultTargets    = []string{"tokenmq", "tokenmq-split", "tokenmq-memory", "mochi-allow-all", "mochi-bolt", "mosquitto", "mosquitto-persist", "mosquitto-plugin", "net-http"}
)

// newTokenRateGuess is the connects/s connect-new-token issues tokens for
// when connect-warm has not measured the target first: above what this
// machine reaches, so that a round runs its whole duration (it was 1,000
// tokens, a quarter-second round).
const newTokenRateGuess = 8000

func scenarios() []scenario {
	return []scenario{
		// Every scenario runs on fresh target processes (see Main).
		{name: "idle-clients-rss", unit: "KiB/client", better: "lower", targets: fleetTargets, once: true,
			prepare: func(t *target, o *options) (any, error) {
				return t.issue(o.idle, []string{"bench/idle/#"}, "R", "idle")
			},
			round: func(t *target, o *options, p any) outcome { return idleRound(t, p.([]cred), t.rssKiB()) }},
		{name: "idle-clients-rss-churn", unit: "KiB/client", better: "lower", targets: fleetTargets, once: true,
			prepare: func(t *target, o *options) (any, error) {
				return t.issue(o.idle, []string{"bench/idle/#"}, "R", "idle")
			},
			round: func(t *target, o *options, p any) outcome { return churnRound(t, p.([]cred), o.churn) }},
		{name: "idle-clients-rss-max", unit: "KiB/client", better: "lower", targets: fleetTargets, once: true,
			prepare: func(t *target, o *options) (any, error) {
				return t.issue(o.max, []string{"bench/idle/#"}, "R", "idle")
			},
			round: func(t *target, o *options, p any) outcome { return idleRound(t, p.([]cred), t.rssKiB()) }},
		{name: "pre-connect-rss", unit: "KiB/socket", better: "lower", targets: fleetTargets, once: true,
			prepare: func(*target, *options) (any, error) { return nil, nil },
			round:   func(t *target, o *options, _ any) outcome { return preConnectRound(t, o.idle) }},
		{name: "connect-storm", unit: "ms", better: "lower", targets: append([]string{"tokenmq-split"}, fleetTargets...), once: true,
			prepare: func(t *target, o *options) (any, error) {
				return t.issue(o.max, []string{"bench/idle/#"}, "R", "idle")
			},
			round: func(t *target, o *options, p any) outcome { return stormRound(t, p.([]cred)) }},
		{name: "connect-warm", unit: "connects/s", better: "higher", targets: append(slices.Clone(allTargets), natsTargets...),
			prepare: func(t *target, o *options) (any, error) {
				creds, err := t.issue(32, []string{"bench/#"}, "R,W", "cw")
				if err == nil {
					connectRound(t, creds, 32, 500*time.Millisecond, false) // fill the cache
				}
				return creds, err
			},
			round: func(t *target, o *options, p any) outcome { return connectRound(t, p.([]cred), 32, o.duration, false) }},
		{name: "connect-new-token", unit: "connects/s", better: "higher", targets: append([]string{"tokenmq", "tokenmq-split", "mochi-allow-all"}, natsTargets...), fresh: true,
			prepare: func(t *target, o *options) (any, error) {
				rate := o.warm[t.name]
				if rate == 0 { // connect-warm did not run first (-scenarios): a rate above this machine's
					rate = newTokenRateGuess
				}
				n := int(rate*o.duration.Seconds()*1.3) + 1000
				return t.issue(min(n, 150_000), []string{"bench/#"}, "R,W", "cn")
			},
			round: func(t *target, o *options, p any) outcome { return connectRound(t, p.([]cred), 32, o.duration, true) }},
		{name: "publish-qos0", unit: "msgs/s", better: "higher", targets: allTargets,
			prepare: preparePublish,
			round: func(t *target, o *options, p any) outcome {
				pp := p.(pubPrep)
				return publishRound(t, pp.pubs, pp.sub, 0, o.duration, false)
			}},
		{name: "publish-qos1", unit: "msgs/s", better: "higher", targets: allTargets,
			prepare: preparePublish,
			round: func(t *target, o *options, p any) outcome {
				pp := p.(pubPrep)
				return publishRound(t, pp.pubs, pp.sub, 1, o.duration, false)
			}},
		// QoS 1 fan-in to a persistent session: the cost of durability.
		// tokenmq writes every message for the session to disk before its
		// PUBACK (group-committed); tokenmq-memory and allow-all Mochi keep
		// it in memory; mochi-bolt is Mochi with its bbolt storage hook (one
		// transaction per event, written after the PUBACK); Mosquitto with
		// persistence saves its database at intervals and at shutdown.
		{name: "publish-qos1-persistent", unit: "msgs/s", better: "higher", targets: persistentTargets,
			prepare: preparePublish,
			round: func(t *target, o *options, p any) outcome {
				pp := p.(pubPrep)
				return publishRound(t, pp.pubs, pp.sub, 1, o.duration, true)
			}},
		// A NATS cluster: publishers on one node, the subscriber on another.
		{name: "publish-qos0-cross-node", unit: "msgs/s", better: "higher", targets: []string{"nats-callout", "nats-static"},
			prepare: preparePublish,
			round: func(t *target, o *options, p any) outcome {
				pp := p.(pubPrep)
				return publishRound(t, pp.pubs, pp.sub, 0, o.duration, false)
			}},
		{name: "publish-qos1-cross-node", unit: "msgs/s", better: "higher", targets: []string{"nats-callout", "nats-static"},
			prepare: preparePublish,
			round: func(t *target, o *options, p any) outcome {
				pp := p.(pubPrep)
				return publishRound(t, pp.pubs, pp.sub, 1, o.duration, false)
			}},
		{name: "fanout-1x50", unit: "deliveries/s", better: "higher", targets: allTargets,
			prepare: func(t *target, o *options) (any, error) {
				pub, err := t.issue(1, []string{"bench/fan"}, "W", "fp")
				if err != nil {
					return nil, err
				}
				subs, err := t.issue(50, []string{"bench/fan"}, "R", "fs")
				return pubPrep{pubs: append(pub, subs...)}, err
			},
			round: func(t *target, o *options, p any) outcome {
				pp := p.(pubPrep)
				return fanoutRound(t, pp.pubs[0], pp.pubs[1:], o.duration)
			}},
		{name: "query-token-api", unit: "requests/s", better: "higher", targets: []string{"tokenmq", "net-http"},
			prepare: prepareQuery,
			round: func(t *target, o *options, p any) outcome {
				out := queryRound(t, p.(string), o.duration, o.warm["query:"+t.name], 0)
				o.warm["query:"+t.name] = out.value // size the next round's pre-signed requests
				return out
			}},
		{name: "query-token-p99-at-20k", unit: "ms", better: "lower", targets: []string{"tokenmq", "net-http"},
			prepare: prepareQuery,
			round:   func(t *target, o *options, p any) outcome { return queryRound(t, p.(string), o.duration, 0, 20000) }},
		{name: "revoke-to-disconnect-p99", unit: "ms", better: "lower", targets: []string{"tokenmq", "tokenmq-split"},
			prepare: func(t *target, o *options) (any, error) { return nil, nil },
			round:   func(t *target, o *options, p any) outcome { return revokeRound(t, o.revoke) }},
	}
}

// prepareQuery issues the token the QueryToken scenarios ask about.
func prepareQuery(t *target, _ *options) (any, error) {
	c, err := t.issue(1, []string{"bench/#"}, "R", "q")
	if err != nil {
		return nil, err
	}
	return c[0].pass, nil
}

func preparePublish(t *target, o *options) (any, error) {
	var pubs []cred
	for i := range 4 {
		c, err := t.issue(1, hundredResources(i), "W", fmt.Sprintf("pub%d", i))
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, c[0])
	}
	sub, err := t.issue(1, []string{"bench/#"}, "R", "sub")
	if err != nil {
		return nil, err
	}
	return pubPrep{pubs: pubs, sub: sub[0]}, nil
}

// Main is the tokenmq-bench command.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "_serve" {
		if err := serveChild(args[1:], stdout); err != nil {
			fmt.Fprintln(stderr, "tokenmq-bench _serve:", err)
			return 1
		}
		return 0
	}
	fs := flag.NewFlagSet("tokenmq-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rounds := fs.Int("rounds", 3, "rounds per scenario and target (medians are reported)")
	duration := fs.Duration("duration", 3*time.Second, "length of one round")
	only := fs.String("scenarios", "", "comma-separated scenarios to run (default all)")
	targetList := fs.String("targets", strings.Join(defaultTargets, ","), "targets to start and measure")
	idle := fs.Int("idle-clients", 5000, "idle clients (and sockets without CONNECT) for the memory scenarios")
	maxc := fs.Int("max-clients", maxClients(), "clients of idle-clients-rss-max and connect-storm (default: what the descriptor limit allows)")
	churn := fs.Duration("churn", 10*time.Second, "connect-subscribe-disconnect cycling before idle-clients-rss-churn measures")
	revoke := fs.Int("revoke-clients", 1000, "clients disconnected by one revocation")
	asJSON := fs.Bool("json", false, "print results as JSON")
	tokenmqConfig := fs.String("tokenmq-config", "", "YAML `file` for the tokenmq targets (addresses, roles and rate limits are the bench's)")
	profileDir := fs.String("profile-dir", "", "write a CPU profile of every target process to this `dir`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *tokenmqConfig != "" {
		abs, err := filepath.Abs(*tokenmqConfig)
		if err != nil {
			fmt.Fprintln(stderr, "tokenmq-bench:", err)
			return 2
		}
		os.Setenv("TOKENMQ_BENCH_CONFIG", abs) // the children read it
	}
	if *profileDir != "" {
		abs, err := filepath.Abs(*profileDir)
		if err == nil {
			err = os.MkdirAll(abs, 0o755)
		}
		if err != nil {
			fmt.Fprintln(stderr, "tokenmq-bench:", err)
			return 2
		}
		os.Setenv("TOKENMQ_BENCH_PROFILE_DIR", abs)
	}
	o := &options{rounds: *rounds, duration: *duration, idle: *idle, max: *maxc, users: *idle, churn: *churn, revoke: *revoke, warm: map[string]float64{}}
	if *only == "" || strings.Contains(*only, "-max") || strings.Contains(*only, "connect-storm") {
		o.users = max(o.idle, o.max)
	}
	targets, err := startTargets(strings.Split(*targetList, ","), o, stderr)
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	if err != nil {
		fmt.Fprintln(stderr, "tokenmq-bench:", err)
		return 1
	}
	var results []row
	for _, sc := range scenarios() {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), sc.name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if len(results) > 0 {
			// Every scenario starts on fresh processes: what ran before
			// changes the results (a QoS 0 overload leaves tokenmq's fan-out
			// ~8 % slower for the rest of the process's life, for reasons
			// not yet found), and a scenario should measure itself.
			for _, t := range targets {
				t.stop()
			}
			if targets, err = startTargets(strings.Split(*targetList, ","), o, io.Discard); err != nil {
				fmt.Fprintln(stderr, "tokenmq-bench: restarting the targets:", err)
				return 1
			}
		}
		r := runScenario(sc, targets, o, stderr)
		results = append(results, r)
		if sc.name == "connect-warm" {
			for name, v := range r.median {
				o.warm[name] = v
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(results)
		return 0
	}
	report(stdout, results, targets)
	return 0
}

func startTargets(names []string, o *options, log io.Writer) ([]*target, error) {
	var out []*target
	for _, n := range names {
		var t *target
		var err error
		switch n {
		case "tokenmq":
			t, err = startTokenmq("tokenmq", "bolt")
		case "tokenmq-memory":
			t, err = startTokenmq("tokenmq-memory", "none")
		case "tokenmq-split":
			t, err = startTokenmqSplit()
		case "mochi-allow-all":
			t, err = startMochi("mochi-allow-all", "")
		case "mochi-bolt":
			t, err = startMochi("mochi-bolt", "bolt")
		case "net-http":
			t, err = startNetHTTP()
		case "nats-callout", "nats-static", "nats-static-bcrypt":
			t, err = startNATS(n)
		case "mosquitto-plugin":
			if t, err = startMosquittoPlugin(); t == nil && err == nil {
				fmt.Fprintln(log, "tokenmq-bench: mosquitto or a C compiler missing (apt-get install mosquitto gcc); skipping mosquitto-plugin")
				continue
			}
		case "mosquitto", "mosquitto-persist":
			if t, err = startMosquitto(n, o.users, n == "mosquitto-persist"); t == nil && err == nil {
				fmt.Fprintln(log, "tokenmq-bench: mosquitto not installed (apt-get install mosquitto); skipping it")
				continue
			}
		default:
			err = fmt.Errorf("unknown target %q", n)
		}
		if err != nil {
			return out, err
		}
		out = append(out, t)
	}
	return out, nil
}

// row is one scenario's results.
type row struct {
	Scenario string
	Unit     string
	Better   string
	Median   map[string]float64 `json:"Median"`
	median   map[string]float64
	Failures map[string]int64
	Notes    map[string]string // the last round's secondary figures
	// Latency holds, for connect scenarios, each round's CONNACK p50 and
	// p99; the summary gives their medians over the rounds.
	Latency map[string]*latency `json:",omitempty"`
	// Delivery sums, for delivery scenarios, what subscribers should have
	// received and did over all rounds, with the worst round's share.
	Delivery map[string]*delivery `json:",omitempty"`
	// CPUPerOp is the median CPU time (µs) the target's processes spent per
	// operation counted, for rate scenarios: the cost of the work itself,
	// steadier than throughput when the generator shares the cores.
	CPUPerOp map[string]float64 `json:",omitempty"`
	// Ratio and CPURatio hold, by ratio column ("tokenmq/mochi", see pairs),
	// the median of each round's ratio of a target to its reference in the
	// same round: the rounds are paired, so a slow spell of the machine that
	// hits every target in one round does not move the ratio.
	Ratio, CPURatio map[string]float64 `json:",omitempty"`
	// StealMax is the largest share (%) of the machine's CPU time the
	// hypervisor took in one round (/proc/stat's steal): a round with a
	// lot of it measured a slower machine than its pair did.
	StealMax float64
}

// delivery is what subscribers received of what they should have, over rounds.
type delivery struct {
	Expected, Delivered int64
	Rounds              int
	Worst               float64 // the lowest share of one round, in %
}

func (d *delivery) add(o outcome) {
	share := 100 * float64(o.delivered) / float64(o.expected)
	if d.Rounds == 0 || share < d.Worst {
		d.Worst = share
	}
	d.Expected += o.expected
	d.Delivered += o.delivered
	d.Rounds++
}

func (d *delivery) String() string {
	return fmt.Sprintf("%d of %d messages received over %d rounds (%.1f%%; worst round %.1f%%)",
		d.Delivered, d.Expected, d.Rounds, 100*float64(d.Delivered)/float64(d.Expected), d.Worst)
}

type latency struct{ P50, P99 []time.Duration }

func (l *latency) String() string {
	med := func(d []time.Duration) float64 {
		d = slices.Clone(d)
		slices.Sort(d)
		return ms(d[len(d)/2])
	}
	return fmt.Sprintf("CONNACK p50 %.1f ms, p99 %.1f ms (medians of %d rounds)", med(l.P50), med(l.P99), len(l.P50))
}

func runScenario(sc scenario, targets []*target, o *options, log io.Writer) row {
	r := row{Scenario: sc.name, Unit: sc.unit, Better: sc.better, median: map[string]float64{}, Failures: map[string]int64{}, Notes: map[string]string{},
		CPUPerOp: map[string]float64{}}
	var applicable []*target
	for _, t := range targets {
		if slices.Contains(sc.targets, t.name) {
			applicable = append(applicable, t)
		}
	}
	preps := map[string]any{}
	rounds := o.rounds
	if sc.once {
		rounds = 1
	}
	values, cpu := make([]map[string]float64, rounds), make([]map[string]float64, rounds)
	for round := range rounds {
		values[round], cpu[round] = map[string]float64{}, map[string]float64{}
		for k := range applicable { // alternate the order from round to round
			t := applicable[(k+round)%len(applicable)]
			prep, ok := preps[t.name]
			if !ok || sc.fresh {
				p, err := sc.prepare(t, o)
				if err != nil {
					fmt.Fprintf(log, "%s on %s: preparing: %v\n", sc.name, t.name, err)
					r.Failures[t.name]++
					continue
				}
				preps[t.name], prep = p, p
			}
			cpu0 := t.cpuSeconds()
			steal0, total0, stealOK := machineTicks()
			out := sc.round(t, o, prep)
			if used := t.cpuSeconds() - cpu0; out.ops > 0 && used > 0 {
				cpu[round][t.name] = used * 1e6 / out.ops
			}
			stealNote := "" // in the round's line only: the notes are the scenario's own figures
			if steal1, total1, ok := machineTicks(); stealOK && ok && total1 > total0 {
				share := 100 * float64(steal1-steal0) / float64(total1-total0)
				r.StealMax = max(r.StealMax, share)
				if share >= 1 {
					stealNote = fmt.Sprintf("steal %.0f%%", share)
				}
			}
			values[round][t.name] = out.value
			r.Failures[t.name] += out.failures
			r.Notes[t.name] = out.note
			if out.p99 > 0 {
				if r.Latency == nil {
					r.Latency = map[string]*latency{}
				}
				if r.Latency[t.name] == nil {
					r.Latency[t.name] = &latency{}
				}
				r.Latency[t.name].P50 = append(r.Latency[t.name].P50, out.p50)
				r.Latency[t.name].P99 = append(r.Latency[t.name].P99, out.p99)
			}
			if out.expected > 0 {
				if r.Delivery == nil {
					r.Delivery = map[string]*delivery{}
				}
				if r.Delivery[t.name] == nil {
					r.Delivery[t.name] = &delivery{}
				}
				r.Delivery[t.name].add(out)
			}
			fmt.Fprintf(log, "%-26s %-16s round %d: %10.1f %s %s\n", sc.name, t.name, round+1, out.value, sc.unit, joinNonEmpty(out.note, failNote(out.failures), stealNote))
		}
	}
	r.median, r.Ratio = summarize(values)
	r.CPUPerOp, r.CPURatio = summarize(cpu)
	r.Median = r.median
	return r
}

// summarize takes per-round values by target to each target's median and,
// for each pair (a ratio column) whose two targets the rounds have, the
// median paired ratio, keyed by the column.
func summarize(rounds []map[string]float64) (medians, ratios map[string]float64) {
	by, paired := map[string][]float64{}, map[string][]float64{}
	for _, vs := range rounds {
		for name, v := range vs {
			by[name] = append(by[name], v)
		}
		for _, p := range pairs {
			if v, ok := vs[p.target]; ok && vs[p.ref] > 0 {
				paired[p.column] = append(paired[p.column], v/vs[p.ref])
			}
		}
	}
	medians, ratios = map[string]float64{}, map[string]float64{}
	for name, vs := range by {
		medians[name] = median(vs)
	}
	for column, vs := range paired {
		ratios[column] = median(vs)
	}
	return medians, ratios
}

// pairs are the ratio columns: a target measured against its reference,
// round by round. tokenmq against the same broker library without auth,
// and its QueryToken API against a bare net/http server answering the same
// requests; the NATS callout against the same cluster with static users;
// Mosquitto with tokenmq's plugin against Mosquitto with password and ACL
// files.
var pairs = []struct{ target, ref, column string }{
	{"tokenmq", "mochi-allow-all", "tokenmq/mochi"},
	{"tokenmq-split", "mochi-allow-all", "split/mochi"},
	{"tokenmq", "net-http", "tokenmq/net-http"},
	{"nats-callout", "nats-static", "callout/static"},
	{"mosquitto-plugin", "mosquitto", "plugin/mosquitto"},
}

func ratioHeader() string {
	var h strings.Builder
	for _, p := range pairs {
		h.WriteString(p.column + "\t")
	}
	return h.String()
}

// ratios prints the paired ratios, one column per pair.
func ratios(w io.Writer, of map[string]float64) {
	for _, p := range pairs {
		if v, ok := of[p.column]; ok {
			fmt.Fprintf(w, "%.2f\t", v)
		} else {
			fmt.Fprint(w, "-\t")
		}
	}
}

func median(vs []float64) float64 {
	slices.Sort(vs)
	return vs[len(vs)/2]
}

func failNote(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d failed", n)
}

func report(w io.Writer, rows []row, targets []*target) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "scenario\tunit\t")
	for _, t := range targets {
		fmt.Fprintf(tw, "%s\t", t.name)
	}
	fmt.Fprintln(tw, ratioHeader())
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t", r.Scenario, r.Unit)
		for _, t := range targets {
			if v, ok := r.median[t.name]; ok {
				cell := fmt.Sprintf("%.0f", v)
				if v < 100 { // the per-client memory figures
					cell = fmt.Sprintf("%.1f", v)
				}
				if f := r.Failures[t.name]; f > 0 {
					cell += fmt.Sprintf(" (%d failed)", f)
				}
				fmt.Fprintf(tw, "%s\t", cell)
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		ratios(tw, r.Ratio)
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprint(tw, "server CPU per operation\tunit\t")
	for _, t := range targets {
		fmt.Fprintf(tw, "%s\t", t.name)
	}
	fmt.Fprintln(tw, ratioHeader())
	for _, r := range rows {
		if len(r.CPUPerOp) == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\tµs\t", r.Scenario)
		for _, t := range targets {
			if v, ok := r.CPUPerOp[t.name]; ok {
				fmt.Fprintf(tw, "%.2f\t", v)
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		ratios(tw, r.CPURatio)
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, r := range rows {
		if r.StealMax >= 1 {
			fmt.Fprintf(w, "%s: up to %.0f%% of the CPU time of a round was stolen by the hypervisor: its ratios are less sure\n", r.Scenario, r.StealMax)
		}
	}
	for _, r := range rows {
		for _, t := range targets {
			if d := r.Delivery[t.name]; d != nil {
				fmt.Fprintf(w, "%s, %s: %s\n", r.Scenario, t.name, d)
			} else if l := r.Latency[t.name]; l != nil {
				fmt.Fprintf(w, "%s, %s: %s\n", r.Scenario, t.name, l)
			} else if n := r.Notes[t.name]; n != "" {
				fmt.Fprintf(w, "%s, %s: %s\n", r.Scenario, t.name, n)
			}
		}
	}
}
