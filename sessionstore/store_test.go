package sessionstore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func reopen(t *testing.T, s *Store, path string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(path, time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Close() })
	return again
}

func sampleSession(id string) Session {
	return Session{ClientID: id, Protocol: 5, ExpiryInterval: 3600, ExpiryFlag: true, ReceiveMaximum: 10, Form: 1, AccessKeyID: "AK1",
		Held: []Held{{Grant: token.Grant{TokenID: token.ID{1, 2}, InstanceID: "i", AccessKeyID: "AK1", Actions: token.ActionReadWrite,
			Resources: []string{"devices/${clientid}/#"}, ClientIDs: []string{"pump-*"}, ExpireTime: time.UnixMilli(1_900_000_000_000).UTC()}, Type: token.ActionRead}}}
}

func sampleMessage(client string, seq uint64) Message {
	return Message{ClientID: client, Seq: seq, QoS: 1, Topic: "devices/pump-1/up", Origin: "pub", Payload: []byte(fmt.Sprint("m", seq)),
		Created: 1_800_000_000, Properties: []byte(`{"user":[{"k":"v"}]}`)}
}

// Everything written comes back after a reopen, in order; deletes and
// marks stick; a session's delete takes its subscriptions and messages.
func TestRoundTrip(t *testing.T) {
	s, path := openTemp(t)
	sess, other := sampleSession("pump-1"), sampleSession("pump-10")
	subs := []Subscription{{ClientID: "pump-1", Filter: "devices/pump-1/#", QoS: 1, NoLocal: true, Identifier: 7}, {ClientID: "pump-10", Filter: "a", QoS: 2}}
	var ops []Op
	ops = append(ops, PutSession(sess), PutSession(other), PutSubscription(subs[0]), PutSubscription(subs[1]))
	for i := range 5 {
		ops = append(ops, PutMessage(sampleMessage("pump-1", s.NextSeq())), PutMessage(sampleMessage("pump-10", uint64(100+i))))
	}
	retained := Message{Topic: "status/pump-1", Payload: []byte("up"), QoS: 1, Retain: true, Origin: "pump-1", Created: 5}
	ops = append(ops, PutRetained(retained), PutRetained(Message{Topic: "gone", Payload: []byte("x")}), DeleteRetained("gone"))
	ops = append(ops, MarkMessage("pump-1", 2, 77, StatePubrel), DeleteMessage("pump-1", 3), MarkMessage("pump-1", 999, 1, StatePublish))
	if err := s.Write(ops...); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path)
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.Sessions, []Session{sess, other}) {
		t.Fatalf("sessions:\n got %+v\nwant %+v", st.Sessions, []Session{sess, other})
	}
	if !reflect.DeepEqual(st.Subscriptions, subs) {
		t.Fatalf("subscriptions %+v", st.Subscriptions)
	}
	var got []string
	for _, m := range st.Messages {
		got = append(got, fmt.Sprintf("%s/%d/%d/%d/%s", m.ClientID, m.Seq, m.PacketID, m.State, m.Payload))
	}
	want := []string{"pump-1/1/0/0/m1", "pump-1/2/77/1/m2", "pump-1/4/0/0/m4", "pump-1/5/0/0/m5",
		"pump-10/100/0/0/m100", "pump-10/101/0/0/m101", "pump-10/102/0/0/m102", "pump-10/103/0/0/m103", "pump-10/104/0/0/m104"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("messages %q\nwant %q", got, want)
	}
	if m := st.Messages[0]; m.Topic != "devices/pump-1/up" || m.Origin != "pub" || string(m.Properties) != `{"user":[{"k":"v"}]}` || m.QoS != 1 || m.Created != 1_800_000_000 {
		t.Fatalf("message fields %+v", m)
	}
	if len(st.Retained) != 1 || !reflect.DeepEqual(st.Retained[0], retained) {
		t.Fatalf("retained %+v", st.Retained)
	}
	if seq := s.NextSeq(); seq <= 104 {
		t.Fatalf("NextSeq %d after loading seq 104", seq)
	}
	if err := s.Write(DeleteSession("pump-1")); err != nil {
		t.Fatal(err)
	}
	st, _ = s.Load()
	if len(st.Sessions) != 1 || len(st.Subscriptions) != 1 || len(st.Messages) != 5 || st.Messages[0].ClientID != "pump-10" {
		t.Fatalf("after deleting pump-1: %d sessions, %d subscriptions, %d messages", len(st.Sessions), len(st.Subscriptions), len(st.Messages))
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// Concurrent writers share transactions: many writes, few commits, every
// write there afterwards.
func TestGroupCommit(t *testing.T) {
	s, _ := openTemp(t)
	const writers, each = 32, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := s.Write(PutMessage(sampleMessage(fmt.Sprint("c", w), s.NextSeq()))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	commits, writes := s.Stats()
	if writes != writers*each {
		t.Fatalf("%d writes applied, want %d", writes, writers*each)
	}
	if commits >= writes {
		t.Fatalf("%d commits for %d concurrent writes: no grouping", commits, writes)
	}
	st, err := s.Load()
	if err != nil || len(st.Messages) != writers*each {
		t.Fatalf("%d messages stored, %v", len(st.Messages), err)
	}
	t.Logf("%d writes in %d commits", writes, commits)
}

// Async writes are committed by Close at the latest; writes after Close fail.
func TestAsyncAndClose(t *testing.T) {
	s, path := openTemp(t)
	for i := range 100 {
		s.WriteAsync(PutMessage(sampleMessage("c", uint64(i+1))))
	}
	s = reopen(t, s, path)
	if st, _ := s.Load(); len(st.Messages) != 100 {
		t.Fatalf("%d async writes survived Close, want 100", len(st.Messages))
	}
	s.Close()
	if err := s.Write(DeleteSession("c")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

// A damaged file is a clear error at open or load, never a panic; a locked
// one is ErrLocked.
func TestDamagedAndLockedFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte("this is not a bbolt file, not even close; "+string(make([]byte, 9000))), 0o600)
	if _, err := Open(garbage, time.Second, nil); !errors.Is(err, ErrDamaged) {
		t.Fatalf("garbage file: %v, want ErrDamaged", err)
	}

	s, path := openTemp(t)
	var ops []Op
	for i := range 300 {
		ops = append(ops, PutMessage(sampleMessage("c", uint64(i+1))), PutSession(sampleSession(fmt.Sprint("s", i))))
	}
	if err := s.Write(ops...); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, 50*time.Millisecond, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Overwrite data pages (after the two meta pages) with junk, every way
	// that can be: open or load must report it, not panic.
	page := os.Getpagesize()
	for _, at := range []int{2 * page, 3 * page, 4 * page, len(b) / 2} {
		damaged := append([]byte(nil), b...)
		for i := at; i < at+page && i < len(damaged); i++ {
			damaged[i] = byte(i * 7)
		}
		p := filepath.Join(dir, fmt.Sprintf("damaged-%d.db", at))
		os.WriteFile(p, damaged, 0o600)
		st, err := Open(p, time.Second, nil)
		if err != nil {
			continue // refused at open: fine
		}
		if _, err := st.Load(); err == nil {
			if err := st.Check(); err == nil {
				t.Logf("damage at %d went unnoticed (a free page)", at)
			}
		}
		st.Close()
	}
	// Meta pages damaged: bbolt refuses the file.
	damaged := append([]byte(nil), b...)
	for i := 0; i < 2*page; i++ {
		damaged[i] ^= 0xFF
	}
	p := filepath.Join(dir, "meta.db")
	os.WriteFile(p, damaged, 0o600)
	if _, err := Open(p, time.Second, nil); err == nil {
		t.Fatal("a file with both meta pages damaged opened")
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(encodeMessage(&Message{QoS: 1, Topic: "a/b", Payload: []byte("x"), Properties: []byte("{}")}))
	f.Add([]byte{messageVersion})
	f.Fuzz(func(t *testing.T, v []byte) {
		m, err := decodeMessage(v)
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("error %v is not ErrDamaged", err)
			}
			return
		}
		again, err := decodeMessage(encodeMessage(&m))
		if err != nil || !reflect.DeepEqual(m, again) {
			t.Fatalf("re-encoded message differs: %v", err)
		}
	})
}
