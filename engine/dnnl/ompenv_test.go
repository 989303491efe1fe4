//go:build cgo && !purego && linux

package dnnl

import (
	"os"
	"testing"
)

// The test binary links this package, so its init must have re-executed it
// with the passive wait policy (unless the user chose a policy or opted out).
func TestOMPWaitPolicyPassive(t *testing.T) {
	if os.Getenv("SIMCLR_OMP_REEXEC") == "0" || os.Getenv("GOMP_SPINCOUNT") != "" {
		t.Skip("re-exec disabled or GOMP_SPINCOUNT set by the user")
	}
	if v := os.Getenv("OMP_WAIT_POLICY"); v == "" {
		t.Fatalf("OMP_WAIT_POLICY is unset: the re-exec in init did not happen")
	}
}
