//go:build unix

package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestCreateTempRespectsUmask: the file's mode is 0666 minus the umask (as
// for os.Create), not os.CreateTemp's fixed 0600.
func TestCreateTempRespectsUmask(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	f, err := CreateTemp(dir, ".x-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o644 {
		t.Errorf("mode %o, want 644 (0666 with umask 022)", got)
	}
	name := filepath.Base(f.Name())
	if !strings.HasPrefix(name, ".x-") || !strings.HasSuffix(name, ".tmp") || filepath.Dir(f.Name()) != dir {
		t.Errorf("name %s does not follow the pattern .x-*.tmp in %s", f.Name(), dir)
	}
	g, err := CreateTemp(dir, ".x-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if g.Name() == f.Name() {
		t.Errorf("two calls gave the same name %s", f.Name())
	}
	if _, err := CreateTemp(filepath.Join(dir, "missing"), "a*"); !os.IsNotExist(err) {
		t.Errorf("missing dir: %v, want a not-exist error", err)
	}
}
