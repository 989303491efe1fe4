package train

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress prints the training status: one line rewritten in place when the
// writer is a terminal, plain lines (every log_every steps) otherwise, so
// that logs redirected to a file stay readable.
type progress struct {
	w        io.Writer
	tty      bool
	lastLen  int
	lastDraw time.Time
}

func newProgress(w io.Writer) *progress {
	if w == nil {
		w = io.Discard
	}
	return &progress{w: w, tty: isTerminal(w)}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// status is what one progress line shows.
type status struct {
	Epoch, Epochs    int // 1-based epoch in progress
	Step, TotalSteps int
	Loss, Acc, LR    float64
	ImgS, WaitShare  float64
	ETA              time.Duration
}

func (s status) String() string {
	return fmt.Sprintf("epoch %d/%d  step %d/%d  loss %.4f  acc %5.1f%%  lr %.4g  %.1f img/s  data-wait %3.0f%%  ETA %s",
		s.Epoch, s.Epochs, s.Step, s.TotalSteps, s.Loss, 100*s.Acc, s.LR, s.ImgS, 100*s.WaitShare, fmtDuration(s.ETA))
}

// update shows s; on a terminal at most every 200 ms unless force, as a
// plain line only when force (a logged step).
func (p *progress) update(s status, force bool) {
	if p.tty {
		now := time.Now()
		if !force && now.Sub(p.lastDraw) < 200*time.Millisecond {
			return
		}
		p.lastDraw = now
		line := s.String()
		pad := ""
		if n := p.lastLen - len(line); n > 0 {
			pad = strings.Repeat(" ", n)
		}
		fmt.Fprintf(p.w, "\r%s%s", line, pad)
		p.lastLen = len(line)
		return
	}
	if force {
		fmt.Fprintln(p.w, s.String())
	}
}

// println prints a message on its own line (ending the in-place line first).
func (p *progress) println(format string, args ...any) {
	if p.tty && p.lastLen > 0 {
		fmt.Fprintln(p.w)
		p.lastLen = 0
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// done ends the in-place line.
func (p *progress) done() {
	if p.tty && p.lastLen > 0 {
		fmt.Fprintln(p.w)
		p.lastLen = 0
	}
}

func fmtDuration(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	default:
		return fmt.Sprintf("%ds", s)
	}
}
