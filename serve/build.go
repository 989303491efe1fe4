package serve

import (
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
)

var setNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ParseSetArg splits a --data argument NAME=SPEC, or a bare SPEC whose name
// is the base name of its path (the kind when it has none) followed by
// -SPLIT when it names a split: cifar10:/data/c10@test is "c10-test".
func ParseSetArg(arg string) (name, spec string, err error) {
	if n, sp, ok := strings.Cut(arg, "="); ok && !strings.Contains(n, ":") {
		if !setNameRE.MatchString(n) {
			return "", "", fmt.Errorf("--data %q: set name %q: use letters, digits, '.', '_' and '-'", arg, n)
		}
		return n, sp, nil
	}
	kind, path, split, err := data.ParseSpec(arg)
	if err != nil {
		return "", "", fmt.Errorf("--data %q: %w", arg, err)
	}
	name = kind
	if path != "" {
		name = filepath.Base(filepath.Clean(path))
	}
	if split != "" {
		name += "-" + split
	}
	name = unsafeName.ReplaceAllString(name, "_")
	if !setNameRE.MatchString(name) {
		return "", "", fmt.Errorf("--data %q: cannot make a set name from it; give one as NAME=SPEC", arg)
	}
	return name, arg, nil
}

// BuildOptions say how BuildIndex embeds a set.
type BuildOptions struct {
	RunDir   string // where the cache lives; "" caches nothing
	Batch    int    // images per forward pass
	Workers  int    // decoding goroutines (0 = all cores)
	Progress io.Writer
}

// BuildIndex indexes ds: its embeddings come from the run's cache when the
// cache's key (weights, layer, evaluation view, data identity) matches,
// else they are computed, with a progress line, and cached.
func BuildIndex(name, spec string, ds data.Dataset, emb *Embedder, b engine.Backend, o BuildOptions) (*Index, error) {
	if ds.Len() == 0 {
		return nil, fmt.Errorf("--data %s: the dataset is empty", spec)
	}
	log := o.Progress
	if log == nil {
		log = io.Discard
	}
	dh, err := DataHash(spec, ds)
	if err != nil {
		return nil, fmt.Errorf("--data %s: %w", spec, err)
	}
	key := CacheKey{Format: cacheFormat, Weights: emb.WeightsHash(), Spec: spec, Len: ds.Len(), Data: dh}
	feats, why := []float32(nil), "no run directory to cache in"
	if o.RunDir != "" {
		feats, why = LoadCache(o.RunDir, name, emb.Layer, key)
	}
	if feats != nil {
		fmt.Fprintf(log, "set %s: %d embeddings from the cache in %s\n", name, ds.Len(), filepath.Join(o.RunDir, CacheDir))
	} else {
		fmt.Fprintf(log, "set %s: embedding %d images of %s (%s)\n", name, ds.Len(), spec, why)
		start, last := time.Now(), time.Now()
		feats, err = emb.Set(ds, o.Batch, o.Workers, func(done, total int) {
			if time.Since(last) >= 2*time.Second || done == total {
				last = time.Now()
				el := time.Since(start).Seconds()
				fmt.Fprintf(log, "set %s: embedded %d/%d images (%.0f%%, %.0f img/s)\n", name, done, total, 100*float64(done)/float64(total), float64(done)/max(el, 1e-9))
			}
		})
		if err != nil {
			return nil, fmt.Errorf("embedding %s: %w", spec, err)
		}
		if o.RunDir != "" {
			if err := SaveCache(o.RunDir, name, emb.Layer, key, feats, emb.Dim()); err != nil {
				fmt.Fprintf(log, "set %s: warning: not cached: %v\n", name, err)
			}
		}
	}
	return NewIndex(name, spec, ds, feats, emb.Dim(), b)
}
