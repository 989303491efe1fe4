//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package stfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteRespectsUmask: files are created 0666 less the umask, as the
// user's other files are (os.CreateTemp alone would give 0600).
func TestWriteRespectsUmask(t *testing.T) {
	for _, c := range []struct {
		umask int
		want  os.FileMode
	}{{0o022, 0o644}, {0o077, 0o600}, {0o002, 0o664}} {
		old := syscall.Umask(c.umask)
		path := filepath.Join(t.TempDir(), "w.safetensors")
		err := Write(path, sample(), nil, Options{})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != c.want {
			t.Errorf("umask %03o: mode %v, want %v", c.umask, st.Mode().Perm(), c.want)
		}
	}
}
