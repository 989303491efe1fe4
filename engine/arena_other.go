//go:build !linux

package engine

// Without a reservation the pool allocates big buffers from Go memory.
func reserveArena() []float32 { return nil }

func commitArena(mem []float32, from, to int) bool { return false }
