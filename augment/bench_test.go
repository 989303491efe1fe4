package augment

import (
	"bytes"
	"image/jpeg"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// cpuClock measures the CPU time of the benchmark's OS thread, so that
// views per CPU-second stays meaningful when other processes share the
// machine (wall-clock views/s is reported too).
type cpuClock struct{ start time.Duration }

func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD (Linux)
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) *cpuClock {
	runtime.LockOSThread()
	b.Cleanup(runtime.UnlockOSThread)
	return &cpuClock{start: threadCPU()}
}

func (c *cpuClock) report(b *testing.B, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit+"/s")
	if d := threadCPU() - c.start; d > 0 {
		b.ReportMetric(float64(b.N)/d.Seconds(), unit+"/cpu-s")
	}
}

// Benchmarks report views/s per core. torchvision 0.14 on PIL on this
// machine (shared/reference/RESULTS.md, 1 core): cifar 1609 views/s,
// 500x375 -> 224 29 views/s decoded, 24 with JPEG decode.
//
//	go test ./augment -run '^$' -bench . -benchtime 3s

// synthImage is a smooth random colour field plus noise, like
// aug_bench.py's synthetic inputs.
func synthImage(rng *rand.Rand, w, h int) *Image {
	const g = 8
	var grid [3][g + 1][g + 1]float32
	for c := range grid {
		for i := range grid[c] {
			for j := range grid[c][i] {
				grid[c][i][j] = rng.Float32()
			}
		}
	}
	im := NewImage(w, h)
	for c := 0; c < 3; c++ {
		for y := 0; y < h; y++ {
			fy := float32(y) / float32(h) * g
			iy := int(fy)
			ty := fy - float32(iy)
			for x := 0; x < w; x++ {
				fx := float32(x) / float32(w) * g
				ix := int(fx)
				tx := fx - float32(ix)
				v := (1-ty)*((1-tx)*grid[c][iy][ix]+tx*grid[c][iy][ix+1]) + ty*((1-tx)*grid[c][iy+1][ix]+tx*grid[c][iy+1][ix+1])
				v += (rng.Float32() - 0.5) * 0.1
				im.Pix[(c*h+y)*w+x] = clamp01(v)
			}
		}
	}
	return im
}

// synthJPEGs encodes n 500x375 synthetic images as quality-90 JPEGs.
func synthJPEGs(b *testing.B, rng *rand.Rand, n int) [][]byte {
	blobs := make([][]byte, n)
	for i := range blobs {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, synthImage(rng, 500, 375).ToNRGBA(), &jpeg.Options{Quality: 90}); err != nil {
			b.Fatal(err)
		}
		blobs[i] = buf.Bytes()
	}
	return blobs
}

// benchPipeline returns the pipeline of a preset.
func benchPipeline(b *testing.B, preset string) *Pipeline {
	cfg, err := Preset(preset)
	if err != nil {
		b.Fatal(err)
	}
	p, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func benchView(b *testing.B, preset string, w, h int) {
	rng := rand.New(rand.NewPCG(1, 1))
	srcs := make([]Source, 16)
	for i := range srcs {
		srcs[i] = synthImage(rng, w, h)
	}
	benchViews(b, benchPipeline(b, preset), srcs, rng)
}

// benchViews makes views of srcs in turn.
func benchViews(b *testing.B, p *Pipeline, srcs []Source, rng *rand.Rand) {
	dst := make([]float32, 3*p.Size()*p.Size())
	b.ReportAllocs()
	clk := startCPU(b)
	for i := 0; b.Loop(); i++ {
		if err := p.View(dst, srcs[i%len(srcs)], rng); err != nil {
			b.Fatal(err)
		}
	}
	clk.report(b, "views")
}

func BenchmarkViewCIFAR(b *testing.B)    { benchView(b, "cifar", 32, 32) }
func BenchmarkViewImageNet(b *testing.B) { benchView(b, "imagenet", 500, 375) }
func BenchmarkViewSTL10(b *testing.B)    { benchView(b, "stl10", 96, 96) }

// BenchmarkViewImageNetJPEG includes decoding a 500x375 q90 JPEG with
// image/jpeg and converting it to an Image, once per view (as the
// torchvision figure does).
func BenchmarkViewImageNetJPEG(b *testing.B) { benchJPEGViews(b, 1) }

// benchJPEGViews decodes a JPEG and makes perDecode views of it per
// iteration.
func benchJPEGViews(b *testing.B, perDecode int) {
	p := benchPipeline(b, "imagenet")
	rng := rand.New(rand.NewPCG(1, 1))
	blobs := synthJPEGs(b, rng, 8)
	dst := make([]float32, 3*p.Size()*p.Size())
	b.ReportAllocs()
	clk := startCPU(b)
	var views int
	for i := 0; b.Loop(); i++ {
		m, err := jpeg.Decode(bytes.NewReader(blobs[i%len(blobs)]))
		if err != nil {
			b.Fatal(err)
		}
		src, err := FromImage(m)
		if err != nil {
			b.Fatal(err)
		}
		for range perDecode {
			if err := p.View(dst, src, rng); err != nil {
				b.Fatal(err)
			}
			views++
		}
	}
	b.ReportMetric(float64(views)/b.Elapsed().Seconds(), "views/s")
	if d := threadCPU() - clk.start; d > 0 {
		b.ReportMetric(float64(views)/d.Seconds(), "views/cpu-s")
	}
}

// BenchmarkDecodeJPEG is the decode + conversion share of the above.
func BenchmarkDecodeJPEG(b *testing.B) {
	blob := synthJPEGs(b, rand.New(rand.NewPCG(1, 1)), 1)[0]
	clk := startCPU(b)
	for b.Loop() {
		m, err := jpeg.Decode(bytes.NewReader(blob))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := FromImage(m); err != nil {
			b.Fatal(err)
		}
	}
	clk.report(b, "images")
}

// BenchmarkViewParallelCIFAR checks that concurrent View calls scale
// (views/s over all cores).
func BenchmarkViewParallelCIFAR(b *testing.B) {
	cfg, _ := Preset("cifar")
	p, _ := New(cfg)
	src := synthImage(rand.New(rand.NewPCG(1, 1)), 32, 32)
	var seed uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		seed++
		rng := rand.New(rand.NewPCG(seed, 7))
		dst := make([]float32, 3*32*32)
		for pb.Next() {
			if err := p.View(dst, src, rng); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "views/s")
}

func benchOp(b *testing.B, size int, op func(im *Image)) {
	im := synthImage(rand.New(rand.NewPCG(1, 1)), size, size)
	work := NewImage(size, size)
	clk := startCPU(b)
	for b.Loop() {
		copy(work.Pix, im.Pix)
		op(work)
	}
	clk.report(b, "ops")
}

func BenchmarkOpHue224(b *testing.B) { benchOp(b, 224, func(im *Image) { AdjustHue(im, 0.1) }) }
func BenchmarkOpJitter224(b *testing.B) {
	p := JitterParams{Order: [4]int{3, 0, 1, 2}, Brightness: 1.2, Contrast: 0.8, Saturation: 1.3, Hue: 0.1}
	benchOp(b, 224, func(im *Image) { ApplyJitter(im, p) })
}
func BenchmarkOpBlur224(b *testing.B) {
	var s blurScratch
	k := GaussianKernel(nil, 23, 1.5)
	benchOp(b, 224, func(im *Image) { s.blur(im.Pix, 224, 224, 3, k) })
}
func BenchmarkOpResizedCrop500to224(b *testing.B) {
	src := synthImage(rand.New(rand.NewPCG(1, 1)), 500, 375)
	dst := NewImage(224, 224)
	clk := startCPU(b)
	for b.Loop() {
		if err := ResizedCrop(dst, src, CropParams{Top: 20, Left: 40, H: 300, W: 400}, 224); err != nil {
			b.Fatal(err)
		}
	}
	clk.report(b, "ops")
}

// BenchmarkTwoViewsImageNetJPEG is what a SimCLR loader does per image:
// decode once, make two views. Reported per view.
func BenchmarkTwoViewsImageNetJPEG(b *testing.B) { benchJPEGViews(b, 2) }
