// huge-pages-preload.c — an LD_PRELOAD library for the compilers of `make build`: every
// anonymous mapping of 2 MiB or more is marked MADV_HUGEPAGE, so that the kernel backs it
// with transparent huge pages (the machine's policy is "madvise": only such mappings get
// them).
//
// Why: gcc keeps its trees in memory it maps itself, 2 MiB at a time (its garbage-collected
// heap), and touches each 4 KiB page of it once. On the virtual machines of CI a page fault
// is dear: a unity unit of src/config took 119,600 faults and 10.1 s; with this library
// 6,400-15,800 faults and 8.3-8.6 s (7 December 2026). clang needs none of this: its memory
// comes from malloc, which the GLIBC_TUNABLES setting beside it in the Makefile covers.
//
// Nothing else changes: the mapping is the one asked for, and a refused madvise is ignored.
// Built by the Makefile into the build tree; never linked into smtpsd.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/types.h>

typedef void* (*mmap_function)(void*, size_t, int, int, int, off_t);

// Found once, when the library is loaded, before the program has a second thread.
static mmap_function next;
__attribute__((constructor)) static void find_next(void) {
  next = (mmap_function)dlsym(RTLD_NEXT, "mmap");
}

void* mmap(void* address, size_t length, int protection, int flags, int fd, off_t offset) {
  if (next == NULL) find_next();  // a constructor that mapped memory before ours ran
  if (next == NULL) {
    errno = ENOSYS;
    return MAP_FAILED;
  }
  void* mapped = next(address, length, protection, flags, fd, offset);
  if (mapped != MAP_FAILED && (flags & MAP_ANONYMOUS) != 0 && length >= ((size_t)2 << 20)) {
    int saved = errno;
    (void)madvise(mapped, length, MADV_HUGEPAGE);
    errno = saved;
  }
  return mapped;
}
