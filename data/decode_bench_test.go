package data

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/simclr-go/simclr/augment"
)

// Side-by-side with torchvision 0.14 on PIL (one core):
//
//	flock /tmp/bench.lock go test ./data -run '^$' -bench 'JPEG|ImageNet' -benchtime 3s
//	flock /tmp/bench.lock /usr/bin/python3 ../shared/reference/aug_bench.py --res 224 --no-breakdown
//
// */cpu-s metrics count the CPU time of the benchmark's thread (cgo calls
// run on it), so they stay meaningful when other jobs share the machine.

func benchThreadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD (Linux)
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCPU locks the benchmark to its thread and returns a function that
// reports n units per second and per CPU-second.
func benchCPU(b *testing.B) func(n int, unit string) {
	runtime.LockOSThread()
	b.Cleanup(runtime.UnlockOSThread)
	start := benchThreadCPU()
	return func(n int, unit string) {
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), unit+"/s")
		if d := benchThreadCPU() - start; d > 0 {
			b.ReportMetric(float64(n)/d.Seconds(), unit+"/cpu-s")
		}
	}
}

// benchJPEGs are 500x375 q90 (4:2:0) JPEGs like aug_bench.py's: a random
// colour grid at 1/16 resolution, smoothly upsampled, plus noise of ±12.
func benchJPEGs(b testing.TB, n int) [][]byte {
	const w, h, g = 500, 375, 16
	rng := rand.New(rand.NewPCG(7, 7))
	out := make([][]byte, n)
	for i := range out {
		gw, gh := w/g+2, h/g+2
		grid := make([]float64, 3*gw*gh)
		for j := range grid {
			grid[j] = rng.Float64() * 255
		}
		m := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			fy := float64(y) / g
			iy, ty := int(fy), fy-float64(int(fy))
			for x := range w {
				fx := float64(x) / g
				ix, tx := int(fx), fx-float64(int(fx))
				var c [3]uint8
				for k := range 3 {
					at := func(yy, xx int) float64 { return grid[(k*gh+yy)*gw+xx] }
					v := (1-ty)*((1-tx)*at(iy, ix)+tx*at(iy, ix+1)) + ty*((1-tx)*at(iy+1, ix)+tx*at(iy+1, ix+1))
					c[k] = clampU8(v + float64(rng.IntN(25)-12))
				}
				m.SetNRGBA(x, y, color.NRGBA{c[0], c[1], c[2], 255})
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 90}); err != nil {
			b.Fatal(err)
		}
		out[i] = buf.Bytes()
	}
	return out
}

// BenchmarkJPEGDecode500x375: decoding only, to planar float RGB (PIL's
// decode + convert("RGB"): 604 images/s, shared/reference/RESULTS.md).
func BenchmarkJPEGDecode500x375(b *testing.B) {
	blobs := benchJPEGs(b, 8)
	for _, c := range []struct {
		name string
		dec  func([]byte) (*augment.Image, error)
	}{{"DecodeImage", DecodeImage}, {"image-jpeg", decodeGo}, {"DecodeImage8", func(b []byte) (*augment.Image, error) {
		im, err := DecodeImage8(b)
		ReleaseImage8(im)
		return nil, err
	}}} {
		b.Run(c.name, func(b *testing.B) {
			report := benchCPU(b)
			n := 0
			for ; b.Loop(); n++ {
				if _, err := c.dec(blobs[n%len(blobs)]); err != nil {
					b.Fatal(err)
				}
			}
			report(n, "images")
		})
	}
}

func imagenetPipeline(b *testing.B) *augment.Pipeline {
	cfg, err := augment.Preset("imagenet")
	if err != nil {
		b.Fatal(err)
	}
	p, err := augment.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkImageNetViews: views/s of the imagenet preset (224 px) from
// 500x375 JPEGs. decoded: from decoded images (torchvision: 29 views/s);
// jpeg: one decode per view, as aug_bench.py measures (24 views/s);
// jpeg-2views: one decode per two views, as the SimCLR loader does;
// jpeg8*: the same through DecodeImage8 and View of its Image8, the loader's path for
// folder datasets.
func BenchmarkImageNetViews(b *testing.B) {
	blobs := benchJPEGs(b, 8)
	p := imagenetPipeline(b)
	var srcs []*augment.Image
	for _, blob := range blobs {
		im, err := DecodeImage(blob)
		if err != nil {
			b.Fatal(err)
		}
		srcs = append(srcs, im)
	}
	for _, c := range []struct {
		name          string
		decode, views int  // per step
		eight         bool // DecodeImage8 + View of an Image8
	}{{"decoded", 0, 1, false}, {"jpeg", 1, 1, false}, {"jpeg-2views", 1, 2, false}, {"jpeg8", 1, 1, true}, {"jpeg8-2views", 1, 2, true}} {
		b.Run(c.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			dst := make([]float32, 3*p.Size()*p.Size())
			report := benchCPU(b)
			views := 0
			for i := 0; b.Loop(); i++ {
				src := srcs[i%len(srcs)]
				if c.eight {
					src8, err := DecodeImage8(blobs[i%len(blobs)])
					if err != nil {
						b.Fatal(err)
					}
					for range c.views {
						if err := p.View(dst, src8, rng); err != nil {
							b.Fatal(err)
						}
						views++
					}
					ReleaseImage8(src8)
					continue
				}
				if c.decode > 0 {
					var err error
					if src, err = DecodeImage(blobs[i%len(blobs)]); err != nil {
						b.Fatal(err)
					}
				}
				for range c.views {
					if err := p.View(dst, src, rng); err != nil {
						b.Fatal(err)
					}
					views++
				}
			}
			report(views, "views")
		})
	}
}
