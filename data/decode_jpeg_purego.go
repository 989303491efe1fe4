//go:build !cgo || purego

package data

import "github.com/simclr-go/simclr/augment"

// decodeJPEGNative is unavailable without cgo: every JPEG goes through
// image/jpeg.
func decodeJPEGNative([]byte) (*augment.Image, bool, error) { return nil, false, nil }

// decodeJPEGNative8 is unavailable without cgo.
func decodeJPEGNative8([]byte) (*augment.Image8, bool, error) { return nil, false, nil }

// nativeJPEG reports whether JPEGs are decoded by libjpeg.
const nativeJPEG = false
