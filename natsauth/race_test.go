//go:build race

package natsauth

const raceEnabled = true
