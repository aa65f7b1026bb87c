//go:build !race

package natsauth

const raceEnabled = false
