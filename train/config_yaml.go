package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LoadConfigFile decodes a YAML file on top of c. Unknown keys are an
// error naming the file, the line and the key.
func (c *Config) LoadConfigFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return c.decodeYAML(path, b)
}

// legacyAugmentKeys maps the top-level keys that held augmentation settings
// before the augment block existed (config.yaml files and checkpoints
// written until December 2026) to their key in the block. They are still
// accepted, in files and as flags, and mean exactly the block's key; giving
// both spellings of one setting is an error. image_size: 0 meant "the
// preset's size", which is what leaving augment.size out means now.
var legacyAugmentKeys = map[string]string{
	"image_size":      "size",
	"crop_scale_min":  "crop_scale_min",
	"crop_scale_max":  "crop_scale_max",
	"flip_p":          "flip_p",
	"jitter_strength": "jitter_strength",
	"jitter_p":        "jitter_p",
	"gray_p":          "gray_p",
	"blur_p":          "blur_p",
}

func (c *Config) decodeYAML(path string, b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config %s: line %d: want a mapping of keys (key: value)", path, root.Line)
	}
	errs := moveLegacyKeys(root)
	errs = append(errs, checkKeys(root, reflect.TypeOf(Config{}), "")...)
	if len(errs) == 0 {
		err := root.Decode(c)
		var te *yaml.TypeError
		switch {
		case errors.As(err, &te):
			errs = te.Errors
		case err != nil:
			return fmt.Errorf("config %s: %w", path, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config %s: %s", path, strings.Join(errs, "; "))
	}
	return nil
}

// moveLegacyKeys rewrites the old top-level augmentation keys of a config
// mapping into its augment block (creating it), keeping their lines for
// error messages.
func moveLegacyKeys(root *yaml.Node) []string {
	var errs []string
	var block *yaml.Node
	var kept, moved []*yaml.Node
	dropped := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch newKey, legacy := legacyAugmentKeys[k.Value]; {
		case k.Value == "augment":
			block = v
			kept = append(kept, k, v)
		case legacy:
			if k.Value == "image_size" && v.Kind == yaml.ScalarNode && v.Value == "0" {
				dropped = true // the preset's size
				continue
			}
			nk := *k
			nk.Value = newKey
			moved = append(moved, &nk, v)
		default:
			kept = append(kept, k, v)
		}
	}
	if len(moved) == 0 {
		if dropped {
			root.Content = kept
		}
		return nil
	}
	if block == nil || (block.Kind == yaml.ScalarNode && block.ShortTag() == "!!null") {
		if block == nil {
			block = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: moved[0].Line}
			kept = append(kept, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "augment", Line: moved[0].Line}, block)
		} else {
			*block = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: block.Line}
		}
	}
	if block.Kind == yaml.MappingNode {
		for i := 0; i < len(moved); i += 2 {
			for j := 0; j+1 < len(block.Content); j += 2 {
				if block.Content[j].Value == moved[i].Value {
					errs = append(errs, fmt.Sprintf("line %d: augment.%s is also given by the old key on line %d; keep only augment.%s",
						block.Content[j].Line, moved[i].Value, moved[i].Line, moved[i].Value))
				}
			}
		}
		block.Content = append(block.Content, moved...)
	}
	root.Content = kept
	return errs
}

// checkKeys refuses, at every level of a mapping decoded into a struct of
// type t, unknown keys and non-integer values (batch: 16.7) of integer
// fields: the YAML decoder would ignore the first and truncate the second
// (to 16) silently, where the flag --batch 16.7 is an error. Types that
// decode themselves (yaml.Unmarshaler, such as the augment block) check
// their own keys.
func checkKeys(n *yaml.Node, t reflect.Type, prefix string) []string {
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return nil // the decoder reports a type mismatch
	}
	fields := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		if k := yamlKey(t.Field(i)); k != "" {
			fields[k] = t.Field(i)
		}
	}
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fields[k.Value]
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("line %d: unknown key %q", k.Line, prefix+k.Value))
			continue
		case reflect.PointerTo(f.Type).Implements(reflect.TypeFor[yaml.Unmarshaler]()):
			continue
		}
		switch f.Type.Kind() {
		case reflect.Int, reflect.Int64:
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
				errs = append(errs, fmt.Sprintf("line %d: %s: %q is not an integer", v.Line, prefix+k.Value, v.Value))
			}
		case reflect.Struct:
			errs = append(errs, checkKeys(v, f.Type, prefix+k.Value+".")...)
		}
	}
	return errs
}

func yamlKey(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	return name
}

// yamlBytes is the config as written to config.yaml.
func (c Config) yamlBytes() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Save writes the config as YAML to path atomically.
func (c Config) Save(path string) error {
	b, err := c.yamlBytes()
	if err != nil {
		return fmt.Errorf("config: encode: %w", err)
	}
	hdr := []byte("# simclr pretrain: resolved configuration of this run\n")
	return writeFileAtomic(path, append(hdr, b...))
}

// Hash identifies the training trajectory: it covers every key that changes
// the sequence of losses, and leaves out run management (out, resume,
// threads, workers, logging, checkpointing and the kNN monitor), which may
// differ when a run is resumed. Compare the hashes of resolved configs: an
// unset augment key and the preset's value for it are the same trajectory
// but not the same hash.
func (c Config) Hash() string {
	h := c.trajectory()
	b, err := h.yamlBytes()
	if err != nil {
		panic(err) // Config only holds plain values
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

func (c Config) trajectory() Config {
	h := c
	h.Out, h.Config = "", ""
	h.Resume, h.ResumeFrom = false, ""
	h.Threads, h.ThreadsForce, h.Workers, h.Deterministic = 0, false, 0, false
	h.LogEvery, h.CheckpointEvery, h.KeepCheckpoints = 0, 0, 0
	h.KNNEvery, h.KNNTrain, h.KNNTest, h.KNNK, h.KNNTau = 0, "", "", 0, 0
	h.SyncCheckEvery, h.WorldSize = 0, 0 // resuming with another world size continues the same trajectory
	return h
}

// diffKeys lists the YAML keys whose values differ between a and b (among
// those that enter Hash), keys of blocks as block.key.
func diffKeys(a, b Config) []string {
	ya, _ := a.trajectory().yamlBytes()
	yb, _ := b.trajectory().yamlBytes()
	var ma, mb map[string]any
	_ = yaml.Unmarshal(ya, &ma)
	_ = yaml.Unmarshal(yb, &mb)
	fa, fb := map[string]any{}, map[string]any{}
	flatten("", ma, fa)
	flatten("", mb, fb)
	keys := map[string]bool{}
	for k := range fa {
		keys[k] = true
	}
	for k := range fb {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		if fmt.Sprint(fa[k]) != fmt.Sprint(fb[k]) {
			out = append(out, fmt.Sprintf("%s (%v vs %v)", k, fa[k], fb[k]))
		}
	}
	sort.Strings(out)
	return out
}

// flatten copies the leaves of a decoded YAML mapping into out, keyed by
// their dotted path.
func flatten(prefix string, m map[string]any, out map[string]any) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			flatten(prefix+k+".", sub, out)
		} else {
			out[prefix+k] = v
		}
	}
}
