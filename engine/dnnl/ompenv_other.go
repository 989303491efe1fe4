//go:build !(cgo && !purego && linux)

package dnnl

// SetupProcess does nothing without oneDNN (or off Linux).
func SetupProcess() {}
