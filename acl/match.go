package acl

// Match reports whether topic name t is matched by topic filter f, by the
// rules of MQTT §4.7: '+' matches exactly one level (which may be empty),
// '#' matches its parent level and any number of levels below it
// [MQTT-4.7.1-2], and a filter that starts with a wildcard never matches a
// topic that starts with '$' [MQTT-4.7.2-1].
//
// Both arguments are assumed valid; Match never allocates.
func Match(f, t string) bool {
	if len(t) > 0 && t[0] == '$' && len(f) > 0 && (f[0] == '+' || f[0] == '#') {
		return false
	}
	fi, ti := 0, 0
	for {
		// fi and ti are each at the start of a level.
		if fi < len(f) && f[fi] == '#' {
			return true
		}
		if fi < len(f) && f[fi] == '+' {
			fi++
			for ti < len(t) && t[ti] != '/' {
				ti++
			}
		} else {
			for fi < len(f) && f[fi] != '/' {
				if ti >= len(t) || t[ti] != f[fi] {
					return false
				}
				fi++
				ti++
			}
			if ti < len(t) && t[ti] != '/' {
				return false
			}
		}
		// Both are at the end of a level: '/' or end of string.
		fEnd, tEnd := fi == len(f), ti == len(t)
		switch {
		case fEnd && tEnd:
			return true
		case tEnd:
			// The topic ended; only "/#" left in the filter matches the parent level.
			return len(f)-fi == 2 && f[fi+1] == '#'
		case fEnd:
			return false
		}
		fi++
		ti++
	}
}
