package serve

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium (or Chrome) binary: $SIMCLR_CHROMIUM, else the
// usual names on PATH.
func chromium() string {
	if p := os.Getenv("SIMCLR_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// browser starts a headless Chromium for one test, with a fresh profile
// and no network access beyond the test server (the flags work as root).
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := chromium()
	if exe == "" {
		t.Skip("no Chromium found (install Debian's chromium, or set SIMCLR_CHROMIUM): the real-browser test is skipped")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	return ctx
}

// browserRun is a run directory with curves to draw.
func browserRun(t *testing.T) string {
	dir := t.TempDir()
	var m strings.Builder
	for s := 1; s <= 30; s++ {
		m.WriteString(stepLine(s))
		if s%10 == 0 {
			fmt.Fprintf(&m, `{"type":"epoch","step":%d,"epoch":%d,"knn_top1":%g}`+"\n", s, s/10, 0.3+0.1*float64(s/10))
		}
	}
	os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(m.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("arch: resnet18\nwidth: 0.125\n"), 0o644)
	return dir
}

// TestBrowser drives the pages in headless Chromium: the search page
// loads query images, a click shows k neighbour images (all decoded), and
// the run page draws its three curves.
func TestBrowser(t *testing.T) {
	e := testEnv(t)
	ctx := browser(t)
	rundir := browserRun(t)
	srv, err := New(Config{RunDir: rundir, Source: "test encoder", Sets: []*Index{e.ix}, Embedder: e.emb, Loopback: true, MaxUpload: testUpload})
	if err != nil {
		t.Fatal(err)
	}
	url := newServer(t, srv)

	// Search: click the first query image; k = 7 neighbours must load.
	const allLoaded = `document.querySelectorAll("#neighbors img.nb").length === 7 &&
		[...document.querySelectorAll("#neighbors img.nb")].every(i => i.complete && i.naturalWidth > 0)`
	err = chromedp.Do(ctx,
		chromedp.Navigate(url+"/search"),
		chromedp.WaitVisible(`#queries img.cand`),
		chromedp.SetValue(`#k`, "7"),
		chromedp.Click(`#queries img.cand`),
	)
	if err == nil {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](allLoaded, chromedp.WithPollingTimeout(30*time.Second)))
	}
	if err != nil {
		t.Fatalf("search page: %v", err)
	}
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.querySelectorAll("#neighbors img.nb")].filter(i => i.naturalWidth > 0).length`))
	if err != nil {
		t.Fatal(err)
	}
	firstScore, err := chromedp.Run(ctx, chromedp.Text(`#neighbors figure b`))
	if err != nil {
		t.Fatal(err)
	}
	if loaded != 7 || !strings.HasPrefix(firstScore, "0.") && !strings.HasPrefix(firstScore, "1.") {
		t.Fatalf("search page: %d neighbour images loaded, first score %q", loaded, firstScore)
	}

	// Run: each chart's canvas has drawn pixels of its series colour.
	err = chromedp.Do(ctx, chromedp.Navigate(url+"/"))
	if err == nil {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll(".chart canvas").length === 3`, chromedp.WithPollingTimeout(30*time.Second)))
	}
	if err != nil {
		t.Fatalf("run page: %v", err)
	}
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]int](`(() => {
		const want = {"chart-loss": [214, 39, 40], "chart-lr": [31, 119, 180], "chart-knn": [44, 160, 44]};
		const out = {};
		for (const [id, rgb] of Object.entries(want)) {
			const c = document.querySelector("#" + id + " canvas");
			const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
			let n = 0;
			for (let i = 0; i < d.length; i += 4)
				if (d[i+3] > 200 && Math.abs(d[i]-rgb[0]) < 30 && Math.abs(d[i+1]-rgb[1]) < 30 && Math.abs(d[i+2]-rgb[2]) < 30) n++;
			out[id] = n;
		}
		return out;
	})()`))
	if err != nil {
		t.Fatalf("run page: %v", err)
	}
	for _, id := range []string{"chart-loss", "chart-lr", "chart-knn"} {
		if drawn[id] < 50 {
			t.Errorf("run page: %s has %d pixels of its curve's colour, want a drawn curve", id, drawn[id])
		}
	}

	// Live: records appended to the run (as a pretrain does) reach the page.
	f, err := os.OpenFile(filepath.Join(rundir, "metrics.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for s := 31; s <= 40; s++ {
		f.WriteString(stepLine(s))
	}
	f.Close()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("status").textContent.includes("43 metrics records")`,
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Text(`#status`))
		t.Fatalf("run page did not pick up the new records: %v (status %q)", err, status)
	}
}
