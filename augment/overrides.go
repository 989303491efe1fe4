package augment

import (
	"fmt"
	rt "reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Overrides is a partial Config: the fields a user gave explicitly, laid
// over a preset by Apply. A training config holds one as its `augment:`
// block; decoding YAML (UnmarshalYAML) and flags (Set) record which keys
// were given, so that the preset supplies the others. Encoding writes only
// the keys that are set, so a resolved block (All) saves every value.
//
// Keys are Config's yaml tags (Keys lists them). The zero value sets
// nothing.
type Overrides struct {
	vals Config
	set  uint32 // bit i: field i of Config was given
}

// overrideField is one key of Config.
type overrideField struct {
	key, help string
	index     int
}

var overrideFields = func() []overrideField {
	t := rt.TypeOf(Config{})
	if t.NumField() > 32 {
		panic("augment: Overrides holds at most 32 fields")
	}
	fs := make([]overrideField, t.NumField())
	for i := range fs {
		f := t.Field(i)
		fs[i] = overrideField{key: f.Tag.Get("yaml"), help: f.Tag.Get("help"), index: i}
		if fs[i].key == "" || fs[i].help == "" {
			panic("augment: Config field " + f.Name + " needs yaml and help tags")
		}
	}
	return fs
}()

// Keys lists the keys of Config, in field order.
func Keys() []string {
	ks := make([]string, len(overrideFields))
	for i, f := range overrideFields {
		ks[i] = f.key
	}
	return ks
}

// KeyHelp is the help text of a key ("" when the key does not exist).
func KeyHelp(key string) string {
	if f, ok := lookupField(key); ok {
		return f.help
	}
	return ""
}

// KeyType names the kind of value of a key, as flag help shows it: int,
// float or floats (three, comma-separated).
func KeyType(key string) string {
	f, ok := lookupField(key)
	if !ok {
		return ""
	}
	switch rt.TypeOf(Config{}).Field(f.index).Type.Kind() {
	case rt.Int:
		return "int"
	case rt.Array:
		return "floats"
	}
	return "float"
}

func lookupField(key string) (overrideField, bool) {
	for _, f := range overrideFields {
		if f.key == key {
			return f, true
		}
	}
	return overrideField{}, false
}

func unknownKey(key string) error {
	return fmt.Errorf("unknown augmentation key %q (known: %s)", key, strings.Join(Keys(), ", "))
}

// All returns the Overrides that set every field to c's value: the form a
// resolved configuration is saved in.
func All(c Config) Overrides { return Overrides{vals: c, set: 1<<len(overrideFields) - 1} }

// IsZero reports whether no key is set (YAML omitempty uses it).
func (o Overrides) IsZero() bool { return o.set == 0 }

// IsSet reports whether key was given.
func (o Overrides) IsSet(key string) bool {
	f, ok := lookupField(key)
	return ok && o.set&(1<<f.index) != 0
}

// Get returns the value given for key (a float64, an int or a [3]float32)
// and whether it was given.
func (o Overrides) Get(key string) (any, bool) {
	f, ok := lookupField(key)
	if !ok || o.set&(1<<f.index) == 0 {
		return nil, false
	}
	return rt.ValueOf(o.vals).Field(f.index).Interface(), true
}

// Unset forgets the value given for key, so that the preset's applies.
func (o *Overrides) Unset(key string) {
	if f, ok := lookupField(key); ok {
		o.set &^= 1 << f.index
	}
}

// Set gives key the value written as text: an integer for size, a number
// for the probabilities and bounds, three comma-separated numbers for mean
// and std (as on the command line).
func (o *Overrides) Set(key, text string) error {
	f, ok := lookupField(key)
	if !ok {
		return unknownKey(key)
	}
	dst := rt.ValueOf(&o.vals).Elem().Field(f.index)
	text = strings.TrimSpace(text)
	switch dst.Kind() {
	case rt.Int:
		v, err := strconv.Atoi(text)
		if err != nil {
			return fmt.Errorf("%s: %q is not an integer", key, text)
		}
		dst.SetInt(int64(v))
	case rt.Float64:
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return fmt.Errorf("%s: %q is not a number", key, text)
		}
		dst.SetFloat(v)
	case rt.Array:
		parts := strings.Split(strings.Trim(text, "[]"), ",")
		if len(parts) != dst.Len() {
			return fmt.Errorf("%s: %q: want %d comma-separated numbers", key, text, dst.Len())
		}
		for i, p := range parts {
			v, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
			if err != nil {
				return fmt.Errorf("%s: %q is not a number", key, p)
			}
			dst.Index(i).SetFloat(v)
		}
	default:
		panic("augment: Overrides: unsupported field kind " + dst.Kind().String())
	}
	o.set |= 1 << f.index
	return nil
}

// String writes the value given for key as Set reads it ("" when unset).
func (o Overrides) String(key string) string {
	v, ok := o.Get(key)
	if !ok {
		return ""
	}
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case [3]float32:
		s := make([]string, len(v))
		for i, x := range v {
			s[i] = strconv.FormatFloat(float64(x), 'g', -1, 32)
		}
		return strings.Join(s, ",")
	}
	return fmt.Sprint(v)
}

// Apply returns base with every given key replaced by its value.
func (o Overrides) Apply(base Config) Config {
	dst := rt.ValueOf(&base).Elem()
	src := rt.ValueOf(o.vals)
	for _, f := range overrideFields {
		if o.set&(1<<f.index) != 0 {
			dst.Field(f.index).Set(src.Field(f.index))
		}
	}
	return base
}

// Merge sets every key that p sets to p's value (p wins).
func (o *Overrides) Merge(p Overrides) {
	o.vals = p.Apply(o.vals)
	o.set |= p.set
}

// MarshalYAML writes the keys that are set, in field order; mean and std
// as flow sequences ([0.4914, 0.4822, 0.4465]).
func (o Overrides) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	src := rt.ValueOf(o.vals)
	for _, f := range overrideFields {
		if o.set&(1<<f.index) == 0 {
			continue
		}
		var v yaml.Node
		if err := v.Encode(src.Field(f.index).Interface()); err != nil {
			return nil, err
		}
		if v.Kind == yaml.SequenceNode {
			v.Style = yaml.FlowStyle
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: f.key}, &v)
	}
	return n, nil
}

// UnmarshalYAML decodes a mapping of keys onto o, adding them to the keys
// already set. Unknown and repeated keys and a non-integer size are errors
// naming the line and the key (as augment.KEY).
func (o *Overrides) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: augment: want a mapping of augmentation keys (%s)", n.Line, strings.Join(Keys(), ", "))}}
	}
	var errs []string
	seen := map[string]bool{}
	dst := rt.ValueOf(&o.vals).Elem()
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := lookupField(k.Value)
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("line %d: unknown key \"augment.%s\" (known: %s)", k.Line, k.Value, strings.Join(Keys(), ", ")))
			continue
		case seen[k.Value]:
			errs = append(errs, fmt.Sprintf("line %d: augment.%s given twice", k.Line, k.Value))
			continue
		}
		seen[k.Value] = true
		field := dst.Field(f.index)
		if field.Kind() == rt.Int && (v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int") {
			errs = append(errs, fmt.Sprintf("line %d: augment.%s: %q is not an integer", v.Line, k.Value, v.Value))
			continue
		}
		val := rt.New(field.Type())
		if err := v.Decode(val.Interface()); err != nil {
			errs = append(errs, fmt.Sprintf("augment.%s: %v", k.Value, strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")))
			continue
		}
		field.Set(val.Elem())
		o.set |= 1 << f.index
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}
