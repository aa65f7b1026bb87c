package natsauth

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats-server/v2/server/gsl"

	"github.com/tokenmq/tokenmq/acl"
)

// natsUser is what nats-server does with a user's permissions for an MQTT
// client: its own sublist matching (gsl) and deny-overlap test
// (SubjectsCollide), over the subjects its MQTT code makes (natsref_test.go).
type natsUser struct {
	pubAllow, pubDeny, subAllow, subDeny *gsl.GenericSublist[int]
	denies                               []string
}

func newNATSUser(t testing.TB, p Permissions) *natsUser {
	t.Helper()
	list := func(subjects []string) *gsl.GenericSublist[int] {
		if len(subjects) == 0 {
			return nil
		}
		l := gsl.NewSublist[int]()
		for i, s := range subjects {
			if err := l.Insert(s, i); err != nil {
				t.Fatalf("nats-server refuses permission subject %q: %v (%+v)", s, err, p)
			}
		}
		return l
	}
	return &natsUser{pubAllow: list(p.PubAllow), pubDeny: list(p.PubDeny), subAllow: list(p.SubAllow), subDeny: list(p.SubDeny), denies: p.SubDeny}
}

func matches(l *gsl.GenericSublist[int], subject string) bool {
	found := false
	l.Match(subject, func(int) { found = true })
	return found
}

// mayPublish is pubAllowedFullCheck: no allow list allows everything.
func (u *natsUser) mayPublish(topic string) bool {
	b, err := mqttToNATSSubjectConversion([]byte(topic), false)
	if err != nil {
		return false
	}
	s := string(b)
	if u.pubAllow != nil && !matches(u.pubAllow, s) {
		return false
	}
	return u.pubDeny == nil || !matches(u.pubDeny, s)
}

// subscription is an MQTT SUBSCRIBE as nats-server takes it: the filter's
// subject, its parent level for P/#, both checked by canSubscribe.
type subscription struct {
	subjects []string
	reserved bool // '#', '+' or "+/…": no live message on a '$' subject
	mperms   bool // a wildcard that overlaps a deny: deliveries are checked against the denies
}

func (u *natsUser) subscribe(filter string) (subscription, bool) {
	b, err := mqttToNATSSubjectConversion([]byte(filter), true)
	if err != nil {
		return subscription{}, false
	}
	s := string(b)
	if strings.HasPrefix(s, "$MQTT.") {
		return subscription{}, false // mqtt.go refuses these filters before any permission check
	}
	sub := subscription{subjects: []string{s}, reserved: isMQTTReservedSubscription(s)}
	if mqttNeedSubForLevelUp(s) {
		sub.subjects = append(sub.subjects, s[:len(s)-2])
	}
	for _, subj := range sub.subjects {
		if u.subAllow != nil && !matches(u.subAllow, subj) {
			return subscription{}, false
		}
		if u.subDeny != nil && matches(u.subDeny, subj) {
			return subscription{}, false
		}
		if strings.ContainsAny(subj, "*>") {
			for _, d := range u.denies {
				if server.SubjectsCollide(d, subj) {
					sub.mperms = true
				}
			}
		}
	}
	return sub, true
}

// receives reports whether a message on topic reaches the subscription:
// live, or as a retained message replayed on subscribe (which nats-server
// sends to reserved subscriptions too).
func (u *natsUser) receives(sub subscription, topic string, retained bool) bool {
	b, err := mqttToNATSSubjectConversion([]byte(topic), false)
	if err != nil {
		return false
	}
	s := string(b)
	hit := false
	for _, subj := range sub.subjects {
		l := gsl.NewSublist[int]()
		if err := l.Insert(subj, 0); err != nil {
			panic(err)
		}
		hit = hit || matches(l, s)
	}
	if !hit || (!retained && sub.reserved && s[0] == '$') {
		return false
	}
	// Without mperms a delivery is not checked: sound only if no subject
	// of the subscription can meet a deny, which the model asserts.
	denied := u.subDeny != nil && matches(u.subDeny, s)
	if denied && !sub.mperms {
		panic(fmt.Sprintf("model: %q delivered to %v unchecked though denied", topic, sub.subjects))
	}
	return !denied
}

// The alphabet: literal levels (empty, '$', '.' inside, and '*', a literal
// to MQTT and a wildcard to NATS) and '$s', a '$' level the translation is
// told about; filters and topics of up to three levels.
var (
	literals = []string{"a", "b", "", "$s", "x.y", "*"}
	dollars  = []string{"$s"}
)

func allFilters(maxLevels int) []string {
	var out []string
	var gen func(prefix []string)
	gen = func(prefix []string) {
		if len(prefix) > 0 {
			out = append(out, strings.Join(prefix, "/"))
		}
		if len(prefix) == maxLevels {
			return
		}
		if len(prefix) > 0 && prefix[len(prefix)-1] == "#" {
			return
		}
		for _, l := range append(slices.Clone(literals), "+", "#") {
			gen(append(slices.Clone(prefix), l))
		}
	}
	gen(nil)
	var valid []string
	for _, f := range out {
		if acl.ValidateFilter(f) == nil {
			valid = append(valid, f)
		}
	}
	return valid
}

func allTopics(maxLevels int) []string {
	var out []string
	for _, f := range allFilters(maxLevels) {
		if !strings.ContainsAny(f, "+#") {
			out = append(out, f)
		}
	}
	return out
}

// hasNATSWildcardLevel: a level '*' or '>' means something else to NATS.
func hasNATSWildcardLevel(s string) bool {
	return slices.ContainsFunc(strings.Split(s, "/"), func(l string) bool { return l == "*" || l == ">" })
}

// check compares NATS, given Translate's permissions for (read, write),
// with tokenmq's own ACL over every filter and topic of the alphabet.
//   - Never more: NATS lets no publish through that W does not match, and
//     delivers (live or retained) no topic R does not match.
//   - A subscription NATS accepts and tokenmq would not is a rider (a
//     filter ending in '#', or with a '*' level, which NATS reads as a
//     wildcard) and receives only what R matches (the point above).
//   - Where nothing was left out, no less: every publish W matches, every
//     subscription R contains, and every delivery tokenmq would make.
func check(t *testing.T, read, write []string, filters, topics []string) (riders int) {
	t.Helper()
	p := Translate(read, write, dollars)
	u := newNATSUser(t, p)
	rACL, err := acl.Compile(read)
	if err != nil {
		t.Fatal(err)
	}
	wACL, err := acl.Compile(write)
	if err != nil {
		t.Fatal(err)
	}
	exact := len(p.LeftOut) == 0
	for _, topic := range topics {
		nats, ours := u.mayPublish(topic), wACL.Match(topic)
		if nats && !ours {
			t.Fatalf("W %q: NATS lets a publish to %q through, tokenmq does not\n%+v", write, topic, p)
		}
		if exact && ours && !nats && !hasNATSWildcardLevel(topic) {
			t.Fatalf("W %q: NATS refuses a publish to %q that tokenmq allows\n%+v", write, topic, p)
		}
	}
	for _, f := range filters {
		sub, accepted := u.subscribe(f)
		covered := rACL.Covers(f)
		if accepted && !covered {
			if !strings.HasSuffix(f, "#") && !hasNATSWildcardLevel(f) {
				t.Fatalf("R %q: NATS accepts a subscription to %q, tokenmq does not\n%+v", read, f, p)
			}
			riders++
		}
		if exact && covered && !accepted && !hasNATSWildcardLevel(f) {
			t.Fatalf("R %q: NATS refuses a subscription to %q that tokenmq accepts\n%+v", read, f, p)
		}
		if !accepted {
			continue
		}
		for _, topic := range topics {
			live, retained := u.receives(sub, topic, false), u.receives(sub, topic, true)
			if (live || retained) && !rACL.Match(topic) {
				t.Fatalf("R %q: NATS delivers %q to a subscription to %q (retained only: %v), tokenmq's R does not match it\n%+v",
					read, topic, f, !live, p)
			}
			if exact && covered && acl.Match(f, topic) && rACL.Match(topic) && !live && !hasNATSWildcardLevel(f) && !hasNATSWildcardLevel(topic) {
				t.Fatalf("R %q: NATS does not deliver %q to a subscription to %q; tokenmq does\n%+v", read, topic, f, p)
			}
		}
	}
	return riders
}

// TestTranslateExhaustive runs check for every single resource of up to
// three levels, as R and as W, for random pairs and triples, and for the
// combinations that make riders.
func TestTranslateExhaustive(t *testing.T) {
	filters, topics := allFilters(3), allTopics(3)
	sets := [][]string{}
	var resources []string // for the combinations: NATS can be exact for these
	for _, f := range filters {
		sets = append(sets, []string{f})
		if !hasNATSWildcardLevel(f) {
			resources = append(resources, f)
		}
	}
	singles := len(sets)
	rng := rand.New(rand.NewPCG(1, 2))
	n := 400
	if testing.Short() || raceEnabled {
		n = 60
	}
	for range n {
		k := 2 + rng.IntN(2)
		var s []string
		for range k {
			s = append(s, resources[rng.IntN(len(resources))])
		}
		sets = append(sets, s)
	}
	sets = append(sets,
		[]string{"a/+", "a"}, []string{"+", "a"}, []string{"+"}, []string{"+/+", "a"}, []string{"a/+", "a", "a/b/c"},
		[]string{"a/+", "a", "a/+/#"}, []string{"#", "$s/a"}, []string{"+/a", "$s/a"}, []string{"a/+/+", "a/b"},
		[]string{"+/+/+", "a/b"}, []string{"+/+/+/+", "a/b/c"}, []string{"a/+", "+"}, []string{"#"}, []string{"+/#"},
	)
	if raceEnabled { // the race detector makes each check ~10x slower: a quarter of the singles, then the rest
		sets = append(sets[:singles/4], sets[singles:]...)
	}
	riders, leftOut := 0, 0
	for _, s := range sets {
		riders += check(t, s, nil, filters, topics)
		check(t, nil, s, filters, topics)
		if len(Translate(s, s, dollars).LeftOut) > 0 {
			leftOut++
		}
	}
	t.Logf("%d resource sets, %d filters, %d topics: %d rider subscriptions accepted (receiving only what R covers); %d sets with something left out, checked for exactness: the other %d",
		len(sets), len(filters), len(topics), riders, leftOut, len(sets)-leftOut)
}

// Exactness where NATS can say it: the translation of common resources
// leaves nothing out, and riders get denies, not refusals.
func TestTranslateCommonResourcesExact(t *testing.T) {
	for _, rs := range [][]string{
		{"#"}, {"a/#"}, {"a/+"}, {"a/+/b"}, {"devices/${x}/#"}, {"a/b", "a/c/#"}, {"a/+", "a"}, {"$s/#"}, {"/a", "a//b"},
		{"+/status"}, {"fleet/+/cmd", "fleet/+/status/#"},
	} {
		p := Translate(rs, rs, dollars)
		if len(p.LeftOut) > 0 {
			t.Errorf("%q: left out %q", rs, p.LeftOut)
		}
	}
	// NATS's own subject spaces: a W '#' may not publish to the JetStream
	// API or MQTT's session subjects; an R '#' is kept from $SYS, and no
	// deny touches the $MQTT.sub and pubrel subjects NATS's sessions need.
	all := Translate([]string{"#"}, []string{"#"}, nil)
	for _, d := range []string{"$JS", "$JS.>", "$MQTT.>", "$SYS.>", "$KV.>"} {
		if !slices.Contains(all.PubDeny, d) {
			t.Errorf("W #: %q not denied: %v", d, all.PubDeny)
		}
	}
	for _, d := range all.SubDeny {
		if collidesInternal(d) {
			t.Errorf("R #: deny %q breaks NATS's MQTT sessions", d)
		}
	}
	if !slices.Contains(all.SubDeny, "$SYS.>") || !slices.Contains(all.SubDeny, "$MQTT") {
		t.Errorf("R #: want $SYS.> and $MQTT denied, got %v", all.SubDeny)
	}
	p := Translate([]string{"a/+", "a"}, nil, nil)
	if !slices.Contains(p.SubDeny, "a.*.>") {
		t.Errorf("R a/+, a: want the rider deny a.*.>, got %+v", p)
	}
	if p := Translate(nil, nil, nil); !slices.Equal(p.PubAllow, []string{nothing}) || !slices.Equal(p.SubAllow, []string{nothing}) {
		t.Errorf("no rights: want allow lists of %q only, got %+v", nothing, p)
	}
}

// What NATS cannot express: a '$' first level nobody told the translation
// about is reachable by a resource starting with a wildcard (here an
// explicit subscription to $u/a under "+/a"; the README lists it). And the
// subscribe side of a lone '+' is left out: a '#' would ride it.
func TestTranslateLimits(t *testing.T) {
	p := Translate([]string{"+/a"}, nil, dollars)
	u := newNATSUser(t, p)
	if _, ok := u.subscribe("$u/a"); !ok {
		t.Error("the unlisted-$ gap closed: update the README's NATS limits")
	}
	if _, ok := u.subscribe("$s/a"); ok {
		t.Error("a listed '$' level is reachable")
	}
	p = Translate([]string{"+"}, nil, dollars)
	if len(p.LeftOut) == 0 || slices.Contains(p.SubAllow, "*") {
		t.Errorf("R +: want its subscribe allow left out, got %+v", p)
	}
}

// Subject is nats-server's conversion, for every filter and topic of a
// larger alphabet and for random strings.
func TestSubjectMatchesNATS(t *testing.T) {
	check := func(s string, filter bool) {
		want, werr := mqttToNATSSubjectConversion([]byte(s), filter)
		got, gerr := Subject(s, filter)
		if (werr != nil) != (gerr != nil) || (werr == nil && got != string(want)) {
			t.Fatalf("Subject(%q, %v) = %q, %v; nats-server: %q, %v", s, filter, got, gerr, want, werr)
		}
	}
	for _, f := range allFilters(4) {
		check(f, true)
		check(f, false)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const chars = "ab/.+#$ *>\t"
	for range 20000 {
		b := make([]byte, 1+rng.IntN(8))
		for i := range b {
			b[i] = chars[rng.IntN(len(chars))]
		}
		if acl.ValidateFilter(string(b)) == nil {
			check(string(b), true)
		}
		if acl.ValidateTopic(string(b)) == nil {
			check(string(b), false)
		}
	}
}

func TestIntersects(t *testing.T) {
	// Brute force over the alphabet's topics.
	filters, topics := allFilters(2), allTopics(3)
	// NATS knows no '$' rule: the same match with '$' made an ordinary character.
	noDollar := func(s string) string {
		if strings.HasPrefix(s, "$") {
			return "§" + s[1:]
		}
		return s
	}
	for _, a := range filters {
		for _, b := range filters {
			if hasNATSWildcardLevel(a) || hasNATSWildcardLevel(b) {
				continue
			}
			for _, aMQTT := range []bool{false, true} {
				want := false
				for _, topic := range topics {
					if hasNATSWildcardLevel(topic) {
						continue
					}
					inA := acl.Match(a, topic)
					if !aMQTT {
						inA = acl.Match(noDollar(a), noDollar(topic))
					}
					if inA && acl.Match(b, topic) {
						want = true
						break
					}
				}
				if got := intersects(strings.Split(a, "/"), strings.Split(b, "/"), aMQTT, true); got != want {
					t.Fatalf("intersects(%q, %q, mqtt=%v) = %v, brute force %v", a, b, aMQTT, got, want)
				}
			}
		}
	}
}
