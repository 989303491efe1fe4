package train

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/simclr-go/simclr/augment"
	"github.com/spf13/pflag"
)

// flagName maps a YAML key to its flag name; a key of the augment block
// (augment.crop_scale_min) becomes --augment.crop-scale-min.
func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

// Flags records the flags bound to a Config by BindFlags.
type Flags struct {
	fs  *pflag.FlagSet
	val reflect.Value // *Config holding the flag values
}

// BindFlags registers one flag per Config field on fs, with defaults from
// def, and one per key of the augment block (--augment.KEY, default: the
// preset's). The old flat augmentation flags (--image-size, --flip-p, ...:
// legacyAugmentKeys) are deprecated aliases of their --augment.KEY flag.
// After parsing, Flags.Apply copies the explicitly set ones onto a config,
// so that "file, then flags" precedence is easy to get right.
func BindFlags(fs *pflag.FlagSet, def Config) *Flags {
	holder := def
	v := reflect.ValueOf(&holder).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := yamlKey(f)
		if f.Name == "Config" {
			name = "config"
		}
		if name == "" || f.Tag.Get("flag") == "-" { // flag:"-": recorded, not set
			continue
		}
		help := f.Tag.Get("help")
		if list, ok := choices[name]; ok {
			help += ": " + strings.Join(list(), "|")
		}
		p := v.Field(i).Addr().Interface()
		switch p := p.(type) {
		case *string:
			fs.StringVar(p, flagName(name), *p, help)
		case *int:
			fs.IntVar(p, flagName(name), *p, help)
		case *int64:
			fs.Int64Var(p, flagName(name), *p, help)
		case *float64:
			fs.Float64Var(p, flagName(name), *p, help)
		case *bool:
			fs.BoolVar(p, flagName(name), *p, help)
		case *augment.Overrides:
			*p = augment.Overrides{} // holds only what the flags set
			setBy := map[string]string{}
			for _, k := range augment.Keys() {
				fs.Var(overrideFlag{o: p, key: k, name: flagName(name + "." + k), setBy: setBy}, flagName(name+"."+k), augment.KeyHelp(k)+" (default: preset)")
			}
			legacy := make([]string, 0, len(legacyAugmentKeys))
			for old := range legacyAugmentKeys {
				legacy = append(legacy, old)
			}
			sort.Strings(legacy)
			for _, old := range legacy {
				k := legacyAugmentKeys[old]
				fs.Var(overrideFlag{o: p, key: k, name: flagName(old), setBy: setBy, legacy: true}, flagName(old), augment.KeyHelp(k))
				_ = fs.MarkDeprecated(flagName(old), fmt.Sprintf("use --%s", flagName(name+"."+k)))
			}
		default:
			panic(fmt.Sprintf("train: BindFlags: field %s has unsupported type %T", f.Name, p))
		}
	}
	return &Flags{fs: fs, val: reflect.ValueOf(&holder)}
}

// ConfigFile is the value of --config ("" when not given).
func (fl *Flags) ConfigFile() string { return fl.val.Elem().FieldByName("Config").String() }

// Changed reports whether the flag for YAML key (augment.KEY for the
// augment block) was set explicitly, under its name or a legacy alias.
func (fl *Flags) Changed(key string) bool {
	if fl.fs.Changed(flagName(key)) {
		return true
	}
	for old, k := range legacyAugmentKeys {
		if key == "augment."+k && fl.fs.Changed(flagName(old)) {
			return true
		}
	}
	return false
}

// Apply copies every explicitly set flag onto c; the augment flags set
// their keys of c's augment block and leave the others.
func (fl *Flags) Apply(c *Config) {
	src := fl.val.Elem()
	dst := reflect.ValueOf(c).Elem()
	t := src.Type()
	for i := 0; i < t.NumField(); i++ {
		if o, ok := src.Field(i).Addr().Interface().(*augment.Overrides); ok {
			dst.Field(i).Addr().Interface().(*augment.Overrides).Merge(*o)
			continue
		}
		name := yamlKey(t.Field(i))
		if name == "" || t.Field(i).Tag.Get("flag") == "-" || !fl.fs.Changed(flagName(name)) {
			continue
		}
		dst.Field(i).Set(src.Field(i))
	}
}

// overrideFlag is the pflag.Value of one key of an augment block, under
// its name or a legacy alias. Giving both names of one key is an error. The
// legacy --image-size 0 (its "preset default") unsets augment.size.
type overrideFlag struct {
	o      *augment.Overrides
	key    string
	name   string
	setBy  map[string]string // key -> the flag name that set it
	legacy bool
}

func (f overrideFlag) String() string {
	if f.o == nil {
		return ""
	}
	return f.o.String(f.key)
}

func (f overrideFlag) Set(s string) error {
	if by, ok := f.setBy[f.key]; ok && by != f.name {
		return fmt.Errorf("--%s is also given as --%s; give only --augment.%s", f.name, by, flagName(f.key))
	}
	f.setBy[f.key] = f.name
	if f.legacy && f.key == "size" && strings.TrimSpace(s) == "0" {
		f.o.Unset(f.key)
		return nil
	}
	return f.o.Set(f.key, s)
}

func (f overrideFlag) Type() string { return augment.KeyType(f.key) }
