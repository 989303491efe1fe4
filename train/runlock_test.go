//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package train

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLockHolderProcess is the child process of the lock tests, not a test
// of its own: run with SIMCLR_TEST_LOCK_DIR set, it takes that run
// directory's lock, says so on stdout and holds it until stdin closes
// (or it is killed).
func TestLockHolderProcess(t *testing.T) {
	dir := os.Getenv("SIMCLR_TEST_LOCK_DIR")
	if dir == "" {
		t.Skip("child process of the run-lock tests")
	}
	l, err := LockRun(dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	l.Release()
	os.Exit(0)
}

// lockHolder starts a second process (this test binary) holding dir's lock.
func lockHolder(t *testing.T, dir string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHolderProcess$")
	cmd.Env = append(os.Environ(), "SIMCLR_TEST_LOCK_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("lock holder: %q, %v", line, err)
	}
	return cmd, stdin
}

// TestSecondWriterFailsAtOnce: while another process holds a run
// directory, LockRun and Pretrain (new and --resume) fail at once, naming
// the directory and the holder's PID; nothing in the directory changes.
func TestSecondWriterFailsAtOnce(t *testing.T) {
	spec := writeTinyCIFAR(t, t.TempDir(), 24, 9)
	cfg := tinyConfig(t, spec)
	cfg.Epochs, cfg.KNNEvery = 1, 0
	if _, err, log := pretrain(t, cfg, Options{}); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	holder, _ := lockHolder(t, cfg.Out)
	before := snapshotDir(t, cfg.Out)
	pid := strconv.Itoa(holder.Process.Pid)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrRunLocked) || !strings.Contains(err.Error(), cfg.Out) || !strings.Contains(err.Error(), "PID "+pid) {
			t.Errorf("%s: got %v, want ErrRunLocked naming %s and PID %s", what, err, cfg.Out, pid)
		}
	}
	_, err := LockRun(cfg.Out)
	check("LockRun", err)
	cfg.Resume = true
	start := time.Now()
	_, err, _ = pretrain(t, cfg, Options{})
	check("pretrain --resume", err)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the refusal took %v; it must not wait for the lock", d)
	}
	cfg.Resume = false
	_, err, _ = pretrain(t, cfg, Options{})
	check("pretrain (new run, same --out)", err)
	if after := snapshotDir(t, cfg.Out); after != before {
		t.Errorf("the refused writers changed the run directory:\nbefore %s\nafter  %s", before, after)
	}

	// Readers take no lock: the run loads beside its writer.
	if _, err := LoadRun(cfg.Out); err != nil {
		t.Errorf("LoadRun beside a writer: %v", err)
	}
}

// TestRunLockDiesWithItsHolder: the lock of a SIGKILLed writer is free at
// once (an OS lock, not a stale lock file), and a resume goes on.
func TestRunLockDiesWithItsHolder(t *testing.T) {
	dir := t.TempDir()
	holder, _ := lockHolder(t, dir)
	if _, err := LockRun(dir); !errors.Is(err, ErrRunLocked) {
		t.Fatalf("while held: %v", err)
	}
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	holder.Wait()
	l, err := LockRun(dir)
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	// The new holder's PID replaces the dead one's.
	b, _ := os.ReadFile(dir + "/" + LockFileName)
	if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file says %q, want our PID %d", b, os.Getpid())
	}
	l.Release()
	// Released explicitly, it can be taken again.
	l2, err := LockRun(dir)
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	l2.Release()
}

// TestRejectedRunLeavesNoDirectory: a new run refused on bad input does not
// leave the directory it created for its lock.
func TestRejectedRunLeavesNoDirectory(t *testing.T) {
	cfg := tinyConfig(t, "cifar10:/nonexistent/data_batch_1.bin")
	if _, err, _ := pretrain(t, cfg, Options{}); err == nil {
		t.Fatal("bad data accepted")
	}
	if _, err := os.Stat(cfg.Out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused run left %s behind (%v)", cfg.Out, err)
	}
}

// snapshotDir lists a directory tree's files with sizes and mtimes.
func snapshotDir(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			fmt.Fprintf(&b, "%s/[%s] ", e.Name(), snapshotDir(t, dir+"/"+e.Name()))
			continue
		}
		info, _ := e.Info()
		fmt.Fprintf(&b, "%s:%d:%d ", e.Name(), info.Size(), info.ModTime().UnixNano())
	}
	return b.String()
}
