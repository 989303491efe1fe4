//go:build cgo && !purego

package data

/*
#cgo LDFLAGS: -ljpeg
#include <stdio.h>
#include <stdlib.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

// libjpeg's default error manager calls exit(); this one jumps back to the
// entry point (each entry point calls setjmp) with the message kept.
typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	char msg[JMSG_LENGTH_MAX];
} sj_err;

typedef struct {
	struct jpeg_decompress_struct d;
	sj_err e;
} sj_dec;

static void sj_error_exit(j_common_ptr c) {
	sj_err *e = (sj_err *)c->err;
	(*c->err->format_message)(c, e->msg);
	longjmp(e->jb, 1);
}

// Warnings that mean pixels are missing or garbage are errors, as they are
// for image/jpeg; benign ones (extraneous bytes, unknown JFIF revision,
// bad ICC marker) are ignored as PIL ignores them. Trace messages are
// dropped.
static void sj_emit(j_common_ptr c, int level) {
	if (level >= 0) return;
	switch (c->err->msg_code) {
	case JWRN_HIT_MARKER:
	case JWRN_HUFF_BAD_CODE:
	case JWRN_JPEG_EOF:
	case JWRN_MUST_RESYNC:
	case JWRN_NOT_SEQUENTIAL:
	case JWRN_BOGUS_PROGRESSION:
#ifdef D_ARITH_CODING_SUPPORTED
	case JWRN_ARITH_BAD_CODE:
#endif
		sj_error_exit(c);
	}
	c->err->num_warnings++;
}

static sj_dec *sj_new(void) {
	sj_dec *s = calloc(1, sizeof *s);
	if (!s) return NULL;
	s->d.err = jpeg_std_error(&s->e.pub);
	s->e.pub.error_exit = sj_error_exit;
	s->e.pub.emit_message = sj_emit;
	if (setjmp(s->e.jb)) {
		free(s);
		return NULL;
	}
	jpeg_create_decompress(&s->d);
	return s;
}

static void sj_free(sj_dec *s) {
	jpeg_destroy_decompress(&s->d);
	free(s);
}

// sj_header reads the header of buf (which must stay valid until sj_free)
// and sets the output colour space. It returns 0, -1 on error (message in
// s->e.msg), or 1 for a colour space left to image/jpeg (CMYK, YCCK).
static int sj_header(sj_dec *s, const unsigned char *buf, unsigned long n, int *w, int *h) {
	if (setjmp(s->e.jb)) return -1;
	jpeg_mem_src(&s->d, buf, n);
	jpeg_read_header(&s->d, TRUE);
	switch (s->d.jpeg_color_space) {
	case JCS_GRAYSCALE:
		s->d.out_color_space = JCS_GRAYSCALE;
		break;
	case JCS_YCbCr:
	case JCS_RGB:
		s->d.out_color_space = JCS_RGB;
		break;
	default:
		return 1;
	}
	// PIL's defaults, spelt out: accurate integer IDCT, triangle-filter
	// chroma upsampling, no scaling.
	s->d.dct_method = JDCT_ISLOW;
	s->d.do_fancy_upsampling = TRUE;
	s->d.scale_num = s->d.scale_denom = 1;
	*w = s->d.image_width;
	*h = s->d.image_height;
	return 0;
}

// sj_decode decodes the image into planar float RGB out (3*w*h values in
// [0,1], the size sj_header reported). It returns 0 or -1 on error.
static int sj_decode(sj_dec *s, float *out) {
	if (setjmp(s->e.jb)) return -1;
	jpeg_start_decompress(&s->d);
	const int w = s->d.output_width, h = s->d.output_height, nc = s->d.output_components;
	const size_t n = (size_t)w * h;
	float lut[256];
	for (int i = 0; i < 256; i++) lut[i] = (float)i / 255.0f; // as augment's u8f
	enum { ROWS = 8 };
	JSAMPARRAY rows = (*s->d.mem->alloc_sarray)((j_common_ptr)&s->d, JPOOL_IMAGE, (JDIMENSION)w * nc, ROWS);
	while (s->d.output_scanline < (JDIMENSION)h) {
		const int y0 = s->d.output_scanline;
		const int got = jpeg_read_scanlines(&s->d, rows, ROWS);
		for (int k = 0; k < got; k++) {
			const JSAMPLE *p = rows[k];
			float *r = out + (size_t)(y0 + k) * w, *g = r + n, *b = g + n;
			if (nc == 1) {
				for (int x = 0; x < w; x++) r[x] = g[x] = b[x] = lut[p[x]];
			} else {
				for (int x = 0; x < w; x++) {
					r[x] = lut[p[3 * x]];
					g[x] = lut[p[3 * x + 1]];
					b[x] = lut[p[3 * x + 2]];
				}
			}
		}
	}
	return 0;
}

// sj_decode8 decodes the image into interleaved 8-bit RGB out (3*w*h
// bytes): RGB scanlines go straight into out, grey ones are expanded.
static int sj_decode8(sj_dec *s, unsigned char *out) {
	if (setjmp(s->e.jb)) return -1;
	jpeg_start_decompress(&s->d);
	const int w = s->d.output_width, h = s->d.output_height, nc = s->d.output_components;
	enum { ROWS = 8 };
	if (nc == 3) {
		JSAMPROW rows[ROWS];
		while (s->d.output_scanline < (JDIMENSION)h) {
			const int y0 = s->d.output_scanline;
			int k = 0;
			for (; k < ROWS && y0 + k < h; k++) rows[k] = out + (size_t)(y0 + k) * w * 3;
			jpeg_read_scanlines(&s->d, rows, k);
		}
		return 0;
	}
	JSAMPARRAY rows = (*s->d.mem->alloc_sarray)((j_common_ptr)&s->d, JPOOL_IMAGE, (JDIMENSION)w, ROWS);
	while (s->d.output_scanline < (JDIMENSION)h) {
		const int y0 = s->d.output_scanline;
		const int got = jpeg_read_scanlines(&s->d, rows, ROWS);
		for (int k = 0; k < got; k++) {
			const JSAMPLE *p = rows[k];
			unsigned char *o = out + (size_t)(y0 + k) * w * 3;
			for (int x = 0; x < w; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = p[x];
		}
	}
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/simclr-go/simclr/augment"
)

// nativeJPEG reports whether JPEGs are decoded by libjpeg.
const nativeJPEG = true

// withJPEG reads b's header with libjpeg and, unless libjpeg leaves the
// colour space to image/jpeg (ok false), calls decode with the decoder and
// the checked size.
func withJPEG(b []byte, decode func(s *C.sj_dec, w, h int) error) (ok bool, err error) {
	s := C.sj_new()
	if s == nil {
		return true, errors.New("decoding jpeg: cannot allocate a libjpeg decoder")
	}
	defer C.sj_free(s)
	// libjpeg's memory source keeps a pointer to b between the two calls.
	var pin runtime.Pinner
	pin.Pin(&b[0])
	defer pin.Unpin()
	var w, h C.int
	switch C.sj_header(s, (*C.uchar)(unsafe.Pointer(&b[0])), C.ulong(len(b)), &w, &h) {
	case 1:
		return false, nil
	case -1:
		return true, fmt.Errorf("decoding jpeg header: %s", C.GoString(&s.e.msg[0]))
	}
	if err := checkSize("jpeg", int(w), int(h)); err != nil {
		return true, err
	}
	return true, decode(s, int(w), int(h))
}

// decodeJPEGNative decodes a grey or YCbCr/RGB JPEG with libjpeg. ok is
// false for colour spaces it leaves to image/jpeg.
func decodeJPEGNative(b []byte) (img *augment.Image, ok bool, err error) {
	ok, err = withJPEG(b, func(s *C.sj_dec, w, h int) error {
		img = augment.NewImage(w, h)
		if C.sj_decode(s, (*C.float)(unsafe.Pointer(&img.Pix[0]))) != 0 {
			return fmt.Errorf("decoding jpeg: %s", C.GoString(&s.e.msg[0]))
		}
		return nil
	})
	if err != nil {
		return nil, ok, err
	}
	return img, ok, nil
}

// decodeJPEGNative8 is decodeJPEGNative producing interleaved 8-bit RGB in
// a buffer from pix8Pool.
func decodeJPEGNative8(b []byte) (img *augment.Image8, ok bool, err error) {
	ok, err = withJPEG(b, func(s *C.sj_dec, w, h int) error {
		img = newPooledImage8(w, h)
		if C.sj_decode8(s, (*C.uchar)(unsafe.Pointer(&img.Pix[0]))) != 0 {
			ReleaseImage8(img)
			return fmt.Errorf("decoding jpeg: %s", C.GoString(&s.e.msg[0]))
		}
		return nil
	})
	if err != nil {
		return nil, ok, err
	}
	return img, ok, nil
}
