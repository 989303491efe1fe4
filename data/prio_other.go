//go:build !linux

package data

// backgroundThread is a no-op where thread priorities are not set.
func backgroundThread() {}
