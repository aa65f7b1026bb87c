//go:build race

package e2e

// raceEnabled is true under -race, whose detector allows at most 8128 live
// goroutines: load tests scale down.
const raceEnabled = true
