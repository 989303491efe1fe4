package eval

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// npyMagic starts every .npy file; version 1.0 follows it.
const npyMagic = "\x93NUMPY"

// NPYWriter streams a 2-D float32 array in NumPy's .npy format (version
// 1.0, little-endian '<f4', C order). The shape is written first, so the
// row count must be known up front; rows then go out batch by batch and
// memory stays bounded whatever the array's size.
type NPYWriter struct {
	w          *bufio.Writer
	rows, cols int
	written    int
	buf        []byte
}

// NewNPYWriter writes the header for a rows x cols array to w.
func NewNPYWriter(w io.Writer, rows, cols int) (*NPYWriter, error) {
	if rows < 0 || cols <= 0 {
		return nil, fmt.Errorf("npy: bad shape (%d, %d)", rows, cols)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	if _, err := bw.Write(npyHeader(rows, cols)); err != nil {
		return nil, fmt.Errorf("npy: writing header: %w", err)
	}
	return &NPYWriter{w: bw, rows: rows, cols: cols}, nil
}

// npyHeader builds magic, version, length and the padded header dict. The
// total header length is a multiple of 64, as NumPy writes it, so the data
// are aligned for memory mapping.
func npyHeader(rows, cols int) []byte {
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols)
	pre := len(npyMagic) + 2 + 2
	total := pre + len(dict) + 1 // + '\n'
	pad := (64 - total%64) % 64
	dict += strings.Repeat(" ", pad) + "\n"
	h := make([]byte, 0, pre+len(dict))
	h = append(h, npyMagic...)
	h = append(h, 1, 0)
	h = binary.LittleEndian.AppendUint16(h, uint16(len(dict)))
	return append(h, dict...)
}

// Write appends whole rows (len(data) a multiple of cols).
func (w *NPYWriter) Write(data []float32) error {
	if len(data)%w.cols != 0 {
		return fmt.Errorf("npy: %d values is not a whole number of %d-wide rows", len(data), w.cols)
	}
	n := len(data) / w.cols
	if w.written+n > w.rows {
		return fmt.Errorf("npy: header promised %d rows, got at least %d", w.rows, w.written+n)
	}
	if cap(w.buf) < 4*len(data) {
		w.buf = make([]byte, 4*len(data))
	}
	b := w.buf[:4*len(data)]
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	w.written += n
	return nil
}

// Close flushes and checks that exactly the promised rows were written. It
// does not close the underlying writer.
func (w *NPYWriter) Close() error {
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	if w.written != w.rows {
		return fmt.Errorf("npy: header promised %d rows, wrote %d", w.rows, w.written)
	}
	return nil
}

// NPYHeader is the parsed header of a .npy file.
type NPYHeader struct {
	Major, Minor int
	Descr        string
	FortranOrder bool
	Shape        []int
	DataOffset   int // bytes before the array data
}

var (
	npyDescrRe   = regexp.MustCompile(`'descr':\s*'([^']*)'`)
	npyFortranRe = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	npyShapeRe   = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

// ReadNPYHeader parses the header of a .npy file (versions 1.0-3.0).
func ReadNPYHeader(r io.Reader) (NPYHeader, error) {
	var h NPYHeader
	pre := make([]byte, 8)
	if _, err := io.ReadFull(r, pre); err != nil {
		return h, fmt.Errorf("npy: reading magic: %w", err)
	}
	if string(pre[:6]) != npyMagic {
		return h, errors.New("npy: not a .npy file (bad magic)")
	}
	h.Major, h.Minor = int(pre[6]), int(pre[7])
	var hlen int
	switch h.Major {
	case 1:
		b := make([]byte, 2)
		if _, err := io.ReadFull(r, b); err != nil {
			return h, fmt.Errorf("npy: reading header length: %w", err)
		}
		hlen, h.DataOffset = int(binary.LittleEndian.Uint16(b)), 10
	case 2, 3:
		b := make([]byte, 4)
		if _, err := io.ReadFull(r, b); err != nil {
			return h, fmt.Errorf("npy: reading header length: %w", err)
		}
		hlen, h.DataOffset = int(binary.LittleEndian.Uint32(b)), 12
	default:
		return h, fmt.Errorf("npy: unsupported format version %d.%d", h.Major, h.Minor)
	}
	if hlen > 1<<20 {
		return h, fmt.Errorf("npy: header of %d bytes is implausibly long", hlen)
	}
	dict := make([]byte, hlen)
	if _, err := io.ReadFull(r, dict); err != nil {
		return h, fmt.Errorf("npy: reading header: %w", err)
	}
	h.DataOffset += hlen
	s := string(dict)
	if !strings.HasSuffix(s, "\n") {
		return h, errors.New("npy: header does not end in a newline")
	}
	m := npyDescrRe.FindStringSubmatch(s)
	if m == nil {
		return h, fmt.Errorf("npy: header %q has no descr", s)
	}
	h.Descr = m[1]
	m = npyFortranRe.FindStringSubmatch(s)
	if m == nil {
		return h, fmt.Errorf("npy: header %q has no fortran_order", s)
	}
	h.FortranOrder = m[1] == "True"
	m = npyShapeRe.FindStringSubmatch(s)
	if m == nil {
		return h, fmt.Errorf("npy: header %q has no shape", s)
	}
	for _, f := range strings.Split(m[1], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		d, err := strconv.Atoi(f)
		if err != nil || d < 0 {
			return h, fmt.Errorf("npy: bad dimension %q in shape", f)
		}
		h.Shape = append(h.Shape, d)
	}
	return h, nil
}

// ReadNPYFloat32 reads a whole little-endian float32 C-order .npy array.
func ReadNPYFloat32(r io.Reader) (NPYHeader, []float32, error) {
	h, err := ReadNPYHeader(r)
	if err != nil {
		return h, nil, err
	}
	if h.Descr != "<f4" || h.FortranOrder {
		return h, nil, fmt.Errorf("npy: want '<f4' in C order, file has %q fortran_order=%v", h.Descr, h.FortranOrder)
	}
	n := 1
	for _, d := range h.Shape {
		n *= d
	}
	b := make([]byte, 4*n)
	if _, err := io.ReadFull(r, b); err != nil {
		return h, nil, fmt.Errorf("npy: reading %d values: %w", n, err)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return h, out, nil
}
