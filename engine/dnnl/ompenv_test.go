//go:build cgo && !purego && linux

package dnnl

import (
	"os"
	"testing"
)

// TestMain runs the tests the way cmd/simclr runs: re-executed once with
// the passive wait policy.
func TestMain(m *testing.M) {
	SetupProcess()
	os.Exit(m.Run())
}

// SetupProcess must have re-executed the test binary with the passive wait
// policy (unless the user chose a policy or opted out).
func TestOMPWaitPolicyPassive(t *testing.T) {
	if os.Getenv("SIMCLR_OMP_REEXEC") == "0" || os.Getenv("GOMP_SPINCOUNT") != "" {
		t.Skip("re-exec disabled or GOMP_SPINCOUNT set by the user")
	}
	if v := os.Getenv("OMP_WAIT_POLICY"); v == "" {
		t.Fatalf("OMP_WAIT_POLICY is unset: the re-exec in SetupProcess did not happen")
	}
}
