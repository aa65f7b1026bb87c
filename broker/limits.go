package broker

import "syscall"

// tokenServiceConns bounds a broker's connections to its token service
// (role broker): well inside the descriptors defaultMaxConnections keeps
// in reserve.
const tokenServiceConns = 64

// defaultMaxConnections is broker.max_connections' default: the process's
// descriptor limit (which Go raises to the hard limit at start) less a
// reserve for the API, the stores and outbound calls: 64 and a sixteenth
// of the limit. 0 (no cap) if the limit cannot be read.
func defaultMaxConnections() int64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 0
	}
	n := int64(rl.Cur)
	return max(n-64-n/16, 1)
}
