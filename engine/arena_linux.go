package engine

import (
	"syscall"
	"unsafe"
)

// arenaBytes is the address space a tape reserves for its big buffers on
// first use. Reserving costs nothing: only pages that are written count as
// memory. It is never unmapped, since slices of it may outlive the tape.
const arenaBytes = 64 << 30

const madvHugepage = 14 // MADV_HUGEPAGE

func reserveArena() []float32 {
	b, err := syscall.Mmap(-1, 0, arenaBytes, syscall.PROT_NONE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// commitArena makes mem[from:to] read-write.
func commitArena(mem []float32, from, to int) bool {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&mem[from])), (to-from)*4)
	if syscall.Mprotect(b, syscall.PROT_READ|syscall.PROT_WRITE) != nil {
		return false
	}
	// Huge pages where the kernel offers them on request: fewer TLB misses
	// and page faults on the first step. Failure only costs speed.
	_ = syscall.Madvise(b, madvHugepage)
	return true
}
