package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"strings"

	"github.com/simclr-go/simclr/augment"
)

// DecodeImageFile reads and decodes one image file into planar RGB. It and
// DecodeImage (and DecodeSourceFile, DecodeSource and the 8-bit
// DecodeImage8) are the only decoders of user images: folder datasets, the
// augment command and the server all go through them, so the header of
// every image is checked against MaxImagePixels (and for an empty size)
// before any pixel memory is allocated, and errors say which file and what
// is wrong.
func DecodeImageFile(path string) (*augment.Image, error) { return decodeFile(path, DecodeImage) }

// decodeFile reads the file at path and decodes it with decode, naming the
// file in errors.
func decodeFile[T any](path string, decode func([]byte) (T, error)) (T, error) {
	var zero T
	b, err := readImageFile(path)
	if err != nil {
		return zero, err
	}
	img, err := decode(b)
	if err != nil {
		return zero, fmt.Errorf("image %s: %w", path, err)
	}
	return img, nil
}

// MaxImageFileBytes bounds the size of an image file read into memory (a
// device such as /dev/zero or a runaway file would otherwise be read until
// memory runs out). The largest image MaxImagePixels allows, stored
// uncompressed as 8-bit RGBA, is 256 MiB.
const MaxImageFileBytes = 512 << 20

// readImageFile reads a whole image file of at most MaxImageFileBytes.
func readImageFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err) // *PathError names the file
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxImageFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	if len(b) > MaxImageFileBytes {
		return nil, fmt.Errorf("image %s: file is over the limit of %d MiB", path, MaxImageFileBytes>>20)
	}
	return b, nil
}

// DecodeImage decodes an encoded image (any registered format) into planar
// RGB: grey, CMYK and paletted images become RGB and alpha is dropped, as
// PIL's convert("RGB") does.
//
// Built with cgo (the default), grey and YCbCr/RGB JPEGs are decoded by
// libjpeg(-turbo) with the settings PIL uses (accurate integer IDCT, fancy
// chroma upsampling), so they match torchvision's input bit for bit and
// decode ~3x faster than image/jpeg. Data that libjpeg reports as corrupt
// (bad Huffman code, premature end of data or file) is an error, as it is
// for image/jpeg; PIL would instead fill in grey. CMYK JPEGs, and all JPEGs
// in builds without cgo or with the purego tag, go through image/jpeg.
func DecodeImage(b []byte) (*augment.Image, error) {
	if isJPEG(b) {
		if img, ok, err := decodeJPEGNative(b); ok {
			return img, err
		}
	}
	return decodeGo(b)
}

// isJPEG reports whether b starts with a JPEG SOI marker followed by
// another marker.
func isJPEG(b []byte) bool { return len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF }

// decodeGo decodes with the standard library's registered decoders and
// augment.FromImage.
func decodeGo(b []byte) (*augment.Image, error) {
	_, format, err := decodeHeader(b)
	if err != nil {
		return nil, err
	}
	m, err := decodeBody(b, format)
	if err != nil {
		return nil, err
	}
	return augment.FromImage(m)
}

// decodeHeader reads b's header with the standard library's registered
// decoders and checks its size, before any pixel memory is allocated.
func decodeHeader(b []byte) (image.Config, string, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return cfg, "", fmt.Errorf("unknown or corrupt image format (want %s)", strings.Join(imageExts, " "))
		}
		if isJPEG(b) {
			return cfg, "", fmt.Errorf("decoding jpeg header: %w", err)
		}
		return cfg, "", fmt.Errorf("decoding header: %w", err)
	}
	return cfg, format, checkSize(format, cfg.Width, cfg.Height)
}

// decodeBody decodes b, whose header decodeHeader accepted.
func decodeBody(b []byte, format string) (image.Image, error) {
	m, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("corrupt or truncated %s: %w", format, err)
	}
	return m, nil
}

// checkSize refuses empty images and ones over MaxImagePixels, before any
// pixel memory is allocated.
func checkSize(format string, w, h int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%s image has empty size %dx%d", format, w, h)
	}
	if int64(w)*int64(h) > MaxImagePixels {
		return fmt.Errorf("%s image is %dx%d, over the limit of %d pixels", format, w, h, MaxImagePixels)
	}
	return nil
}
