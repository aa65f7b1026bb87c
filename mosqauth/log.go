package mosqauth

import (
	"bytes"
	"log/slog"
	"sync"
)

// lineQueue collects the plugin's log lines, from any goroutine, until
// Mosquitto's thread writes them to Mosquitto's log (Plugin.flushLog).
type lineQueue struct {
	wake    func() // asks for a tick, to write them
	mu      sync.Mutex
	lines   []logLine
	dropped int
}

type logLine struct {
	level slog.Level
	text  string
}

// maxQueuedLines bounds the log lines waiting for a tick.
const maxQueuedLines = 10000

// Write takes one line of slog's text handler.
func (q *lineQueue) Write(b []byte) (int, error) {
	level := slog.LevelInfo
	switch {
	case bytes.Contains(b, []byte("level=ERROR")):
		level = slog.LevelError
	case bytes.Contains(b, []byte("level=WARN")):
		level = slog.LevelWarn
	case bytes.Contains(b, []byte("level=DEBUG")):
		level = slog.LevelDebug
	}
	q.mu.Lock()
	if len(q.lines) < maxQueuedLines {
		q.lines = append(q.lines, logLine{level, string(bytes.TrimRight(b, "\n"))})
	} else {
		q.dropped++
	}
	q.mu.Unlock()
	q.wake()
	return len(b), nil
}

func (q *lineQueue) take() []logLine {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.lines) == 0 && q.dropped == 0 {
		return nil
	}
	out := q.lines
	if q.dropped > 0 {
		out = append(out, logLine{slog.LevelWarn, "tokenmq: log lines dropped while Mosquitto's loop was busy"})
		q.dropped = 0
	}
	q.lines = nil
	return out
}
