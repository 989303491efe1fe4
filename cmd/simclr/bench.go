package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/dist"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/backends"
	"github.com/simclr-go/simclr/loss"
	"github.com/simclr-go/simclr/method"
	"github.com/simclr-go/simclr/nn"
	"github.com/simclr-go/simclr/optim"
	"github.com/simclr-go/simclr/train"
	"github.com/spf13/cobra"
)

func init() { rootCmd.AddCommand(newBenchCmd()) }

// benchOpts mirror ../shared/reference/simclr_ref.py's arguments.
type benchOpts struct {
	Arch, Stem, Head, Mode, Backend string
	Method                          string
	Width, Temperature              float64
	Batch, Steps, Warmup, Threads   int
	Size                            int
	ThreadsForce                    bool
	Deterministic                   bool
	BN                              string // global|local under mpirun
}

// benchResult is the JSON line bench prints; the names follow
// simclr_ref.py's output so the two can be compared side by side.
type benchResult struct {
	Arch         string  `json:"arch"`
	Width        float64 `json:"width"`
	Stem         string  `json:"stem"`
	Mode         string  `json:"mode"`
	Method       string  `json:"method,omitempty"`
	Backend      string  `json:"backend"`
	Threads      int     `json:"threads"`
	Batch        int     `json:"batch"`
	ViewsPerStep int     `json:"views_per_step"`
	ImagesPerS   float64 `json:"images_per_s"`
	ViewsPerS    float64 `json:"views_per_s"`
	MsPerStep    float64 `json:"ms_per_step"`
	MsPerStepMin float64 `json:"ms_per_step_min"`
	MsPerStepMax float64 `json:"ms_per_step_max"`
	TimedSteps   int     `json:"timed_steps"`
	WarmupSteps  int     `json:"warmup_steps"`
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
	Params       int     `json:"params"`
	FwdGFLOPView float64 `json:"fwd_gflop_per_view"`
	GFLOPPerStep float64 `json:"gflop_per_step"`
	GFLOPS       float64 `json:"gflops"`
	LastLoss     float64 `json:"last_loss,omitempty"`
	GoMaxProcs   int     `json:"gomaxprocs"`

	// Deterministic is --deterministic: kernels chosen by a fixed rule.
	Deterministic bool `json:"deterministic"`

	// Under mpirun: the number of processes (Batch is the global batch,
	// ImagesPerS global), the time per step spent in collectives (median
	// over the timed steps, on rank 0), and every rank's peak RSS.
	WorldSize     int       `json:"world_size"`
	CommMsPerStep float64   `json:"comm_ms_per_step,omitempty"`
	PeakRSSRanks  []float64 `json:"peak_rss_mib_per_rank,omitempty"`
	BN            string    `json:"bn,omitempty"`
}

func newBenchCmd() *cobra.Command {
	o := benchOpts{}
	cmd := &cobra.Command{
		Use:   "bench [--arch resnet18] [--stem cifar] [--width 1] [--batch 64] [--steps 10] [--threads 2] [--mode train|embed]",
		Short: "Time SimCLR training steps (or embedding) on synthetic inputs",
		Long: `Time full SimCLR training steps on synthetic inputs, as
../shared/reference/simclr_ref.py does for PyTorch: both views of B images go
through one forward of 2B images, then the --method's loss (NT-Xent for
simclr; for supcon the images get the labels i mod 10), backward and a LARS
step (lr 0.3*B/256). After the warm-up steps, each step is timed and the median
reported. --mode embed times the encoder alone in evaluation mode without
gradients on B images.

Prints one JSON line: images_per_s (source images: each gives 2 views in
train mode), ms_per_step (median), peak_rss_mib (getrusage max RSS),
gflops (achieved: forward conv+linear FLOPs x3 for training, as the
reference counts them) and the backend.

Under mpirun (mpirun -np N simclr bench ...) --batch is the global batch:
each process runs B/N images with --threads threads, the step is the
data-parallel one (gathered NT-Xent, --bn global|local, gradient
allreduce), and rank 0 prints global images_per_s, comm_ms_per_step and
every rank's peak RSS. --mode allreduce times MPI_Allreduce of float32
buffers from 4 KiB to 64 MiB instead (latency and bandwidth).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Threads = train.CapThreads(o.Threads, o.ThreadsForce, cmd.ErrOrStderr())
			comm, err := initComm()
			if err != nil {
				return err
			}
			if o.Mode == "allreduce" {
				return benchAllreduce(cmd.OutOrStdout(), comm, o.Steps)
			}
			b, err := backends.New(backends.Options{Name: o.Backend, Threads: o.Threads, Deterministic: o.Deterministic})
			if err != nil {
				return fmt.Errorf("--backend: %w", err)
			}
			res, err := runBench(o, b, comm)
			if err != nil {
				return err
			}
			j, err := json.Marshal(res)
			if err != nil {
				return err
			}
			if comm.Rank() == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), string(j))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Arch, "arch", "resnet18", "encoder: "+strings.Join(nn.ArchNames(), "|"))
	f.StringVar(&o.Stem, "stem", "cifar", "cifar|imagenet")
	f.Float64Var(&o.Width, "width", 1, "width multiplier")
	f.StringVar(&o.Head, "head", "v1", "projection head v1|v2")
	f.IntVar(&o.Batch, "batch", 64, "source images per step (train mode: 2B views)")
	f.IntVar(&o.Steps, "steps", 10, "timed steps")
	f.IntVar(&o.Warmup, "warmup", 2, "untimed warm-up steps")
	f.IntVar(&o.Threads, "threads", 0, "compute threads (0 = all cores; above the CPU count: capped to it, with a warning)")
	f.BoolVar(&o.ThreadsForce, "threads-force", false, "use --threads even above the number of CPUs")
	f.BoolVar(&o.Deterministic, "deterministic", false, "choose kernels by fixed rules instead of timing (what pretrain --deterministic costs)")
	f.IntVar(&o.Size, "image-size", 32, "side of the synthetic images")
	f.StringVar(&o.Mode, "mode", "train", "train (forward+NT-Xent+backward+LARS) | embed (encoder, eval, no grad) | allreduce (MPI only)")
	f.StringVar(&o.BN, "bn", "global", "batch norm under mpirun: global | local")
	f.StringVar(&o.Backend, "backend", backends.Auto, strings.Join(backends.Names(), " | ")+" (auto: oneDNN when built in)")
	f.Float64Var(&o.Temperature, "temperature", 0.5, "temperature of the contrastive loss")
	f.StringVar(&o.Method, "method", method.Default, "training method (train mode): "+strings.Join(method.Names(), "|"))
	return cmd
}

func runBench(o benchOpts, b engine.Backend, comm dist.Comm) (benchResult, error) {
	if o.Mode != "train" && o.Mode != "embed" {
		return benchResult{}, fmt.Errorf("--mode %q: want train, embed or allreduce", o.Mode)
	}
	if o.Batch < 2 || o.Steps < 1 || o.Warmup < 0 || o.Size < 1 {
		return benchResult{}, fmt.Errorf("bench: need --batch >= 2, --steps >= 1, --warmup >= 0, --image-size >= 1")
	}
	if o.BN != "global" && o.BN != "local" {
		return benchResult{}, fmt.Errorf("--bn %q: want global or local", o.BN)
	}
	N := comm.Size()
	if o.Batch%N != 0 {
		return benchResult{}, fmt.Errorf("--batch %d is not a multiple of the %d processes (mpirun -np): --batch is the global batch", o.Batch, N)
	}
	tc := dist.NewTimed(comm)
	m, err := nn.NewModel(nn.ResNetConfig{Arch: o.Arch, Width: o.Width, Stem: o.Stem, Seed: 0}, nn.HeadConfig{Version: o.Head, Seed: 1})
	if err != nil {
		return benchResult{}, err
	}
	B := o.Batch / N // this process's images
	views := B
	if o.Mode == "train" {
		views = 2 * B
	}
	// The global batch's inputs, of which this process takes its slice
	// (rows r*B.. of view 1 and of view 2), so that N processes run the
	// same global step as one.
	rng := rand.New(rand.NewPCG(1, 2))
	vl := 3 * o.Size * o.Size
	all := make([]float32, N*views*vl)
	for i := range all {
		all[i] = float32(rng.NormFloat64())
	}
	xs := all
	if N > 1 {
		xs = make([]float32, 0, views*vl)
		r := comm.Rank()
		for v := range views / B {
			lo := (v*N*B + r*B) * vl
			xs = append(xs, all[lo:lo+B*vl]...)
		}
	}
	tp := engine.NewTape(b)
	if o.BN == "global" {
		tp.SetBNSync(tc)
	}
	fwdView := float64(m.FLOPs(o.Size, o.Size)) // encoder + head, one view
	var step func() (float64, error)
	var gflopStep float64
	if o.Mode == "train" {
		if o.Method == "" {
			o.Method = method.Default
		}
		meth, err := method.New(o.Method, m, method.Config{Temperature: o.Temperature,
			Gather:       func(tp *engine.Tape, z *engine.Tensor) *engine.Tensor { return dist.GatherViews(tp, tc, z) },
			GatherLabels: func(l []int) ([]int, error) { return dist.GatherLabels(tc, l), nil }})
		if err != nil {
			return benchResult{}, fmt.Errorf("--method: %w", err)
		}
		opt, err := optim.NewLARS(meth.Params(), optim.LARSDefaults)
		if err != nil {
			return benchResult{}, err
		}
		var ps []*engine.Tensor
		for _, p := range m.Params() {
			ps = append(ps, p.T)
		}
		gs := dist.NewGradSync(tc, ps, 0)
		batch := &data.PairBatch{Views: xs, N: B, Size: o.Size, Indices: make([]int, B), Labels: make([]int, B)}
		for i := range B {
			g := comm.Rank()*B + i // the image's index in the global batch
			batch.Indices[i], batch.Labels[i] = g, g%10
		}
		lr := float32(0.3 * float64(o.Batch) / 256)
		st := &optim.Step{Tape: tp, Opt: opt, AfterBackward: func() error { gs.Sync(); return nil }}
		step = func() (float64, error) {
			var stats loss.Stats
			_, err := st.Run(lr, func(tp *engine.Tape) (l *engine.Tensor, err error) {
				l, stats, err = meth.Loss(tp, batch)
				return l, err
			})
			if errors.Is(err, optim.ErrNonFinite) {
				return stats.Loss, nil // reported after the timed steps
			}
			return stats.Loss, err
		}
		gflopStep = 3 * fwdView * float64(views) / 1e9
	} else {
		x := engine.FromData(xs, views, 3, o.Size, o.Size)
		tp.SetGrad(false)
		step = func() (float64, error) {
			tp.Reset()
			h := tp.Plain(m.Encoder.Forward(tp, x, false))
			return float64(h.Data()[0]), nil
		}
		gflopStep = fwdView * float64(views) / 1e9
	}
	for range o.Warmup {
		if _, err := step(); err != nil {
			return benchResult{}, err
		}
	}
	times := make([]float64, o.Steps)
	comms := make([]float64, o.Steps)
	var last float64
	for i := range times {
		t0, c0 := time.Now(), tc.Total
		if last, err = step(); err != nil {
			return benchResult{}, err
		}
		times[i] = time.Since(t0).Seconds()
		comms[i] = (tc.Total - c0).Seconds()
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	med := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		med = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	res := benchResult{
		Arch: o.Arch, Width: o.Width, Stem: o.Stem, Mode: o.Mode, Backend: b.Name(), Threads: o.Threads,
		Batch: o.Batch, ViewsPerStep: views * N, WorldSize: N,
		ImagesPerS: round(float64(o.Batch)/med, 2), ViewsPerS: round(float64(views*N)/med, 2),
		MsPerStep: round(1e3*med, 1), MsPerStepMin: round(1e3*sorted[0], 1), MsPerStepMax: round(1e3*sorted[len(sorted)-1], 1),
		TimedSteps: o.Steps, WarmupSteps: o.Warmup, PeakRSSMiB: round(peakRSSMiB(), 0),
		Params: nn.NumParams(m), FwdGFLOPView: round(fwdView/1e9, 4),
		GFLOPPerStep: round(gflopStep*float64(N), 2), GFLOPS: round(gflopStep*float64(N)/med, 1),
		GoMaxProcs: runtime.GOMAXPROCS(0),
	}
	res.Deterministic = o.Deterministic
	if N > 1 {
		slices.Sort(comms)
		res.CommMsPerStep = round(1e3*comms[len(comms)/2], 2)
		res.BN = o.BN
		rss := make([]float64, N)
		comm.AllgatherF64([]float64{peakRSSMiB()}, rss)
		for i := range rss {
			rss[i] = round(rss[i], 0)
		}
		res.PeakRSSRanks = rss
	}
	if o.Mode == "train" {
		res.Method = o.Method
		if math.IsNaN(last) || math.IsInf(last, 0) {
			return res, fmt.Errorf("bench: the loss became %v", last)
		}
		res.LastLoss = round(last, 4)
	}
	return res, nil
}

// peakRSSMiB is getrusage's maximum resident set size (KiB on Linux).
func peakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}

// benchAllreduce times in-place float32 sum allreduces of 4 KiB ... 64 MiB
// (the median of steps calls each) and prints one JSON line per size:
// latency, algorithm bandwidth (bytes / time) and bus bandwidth (the
// bytes each link carries in a ring, 2(N-1)/N of them, per time).
func benchAllreduce(w io.Writer, c dist.Comm, steps int) error {
	if c.Size() < 2 {
		return fmt.Errorf("--mode allreduce needs mpirun -np 2 or more")
	}
	if steps < 1 {
		return fmt.Errorf("--steps %d: want >= 1", steps)
	}
	n := c.Size()
	for bytes := 4 << 10; bytes <= 64<<20; bytes *= 4 {
		buf := make([]float32, bytes/4)
		c.AllreduceF32(buf) // warm-up (connection set-up, page faults)
		ts := make([]float64, steps)
		sync := make([]float32, 1)
		for i := range ts {
			// A 4-byte allreduce lines the ranks up (Barrier sleeps
			// while it waits, which would leave them skewed).
			c.AllreduceF32(sync)
			t0 := time.Now()
			c.AllreduceF32(buf)
			ts[i] = time.Since(t0).Seconds()
		}
		// The slowest rank's time is the collective's.
		all := make([]float64, n*steps)
		c.AllgatherF64(ts, all)
		for i := range ts {
			for r := range n {
				ts[i] = max(ts[i], all[r*steps+i])
			}
		}
		slices.Sort(ts)
		med := ts[len(ts)/2]
		if c.Rank() == 0 {
			fmt.Fprintf(w, `{"mode":"allreduce","world_size":%d,"bytes":%d,"us":%.1f,"algbw_gbs":%.3f,"busbw_gbs":%.3f}`+"\n",
				n, bytes, 1e6*med, float64(bytes)/med/1e9, float64(bytes)/med/1e9*2*float64(n-1)/float64(n))
		}
	}
	return nil
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
