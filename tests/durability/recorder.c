/* recorder.c — an LD_PRELOAD shim that records, in order across threads, every file system
 * call of a process that changes what is on disk under one directory, with the full data
 * written, and the moments the process acknowledged a message ("250 ... queued as <id>").
 * tests/integration/power_loss.py replays the log to build the states a power cut could
 * leave (docs/testing.md "Power-loss simulation"). Never part of smtpsd.
 *
 *   SMTPSD_RECORD_LOG=<file>   where the log goes (without it the shim does nothing)
 *   SMTPSD_RECORD_ROOT=<dir>   only files and directories under it are recorded (absolute)
 *
 * The log: one record per call, a text line "<seq> <op> <pid> <tid> <fields...> <n>\n"
 * followed by n raw data octets and "\n". Paths are percent-encoded (no space or newline
 * in a field). seq is one global counter taken under one lock, after the call returned
 * (what a call did is visible from its seq on). A sync also has a start: the counter when
 * it began; it covers exactly the calls with seq <= start (what was complete before it).
 *
 *   O seq pid tid path flags mode ino 0     open/openat/creat that succeeded (file or dir;
 *                                           flags in decimal, mode in octal)
 *   W seq pid tid ino offset n <data>       write/pwrite/writev/pwritev/copy_file_range
 *   T seq pid tid ino length 0              ftruncate/truncate
 *   F seq pid tid ino mode offset length 0  fallocate (only modes that keep data)
 *   R seq pid tid old new flags 0           rename/renameat/renameat2
 *   L seq pid tid old new 0                 link/linkat
 *   U seq pid tid path 0                    unlink/unlinkat
 *   D seq pid tid path 0                    rmdir/unlinkat(AT_REMOVEDIR)
 *   M seq pid tid path mode 0               mkdir/mkdirat (mode in octal)
 *   S seq pid tid start ino path kind 0     fsync (kind f) / fdatasync (kind d)
 *   Y seq pid tid start 0                   syncfs/sync: everything
 *   K seq pid tid id 0                      "250 ... queued as <id>" about to be sent, on
 *                                           a socket or through SSL_write(_ex)
 *   X seq pid tid what n <text>             a call the replay cannot model: it refuses the log
 *
 * What is refused rather than missed: a shared writable mmap, sendfile/splice into a file,
 * O_TMPFILE, RENAME_EXCHANGE, hole punching, a file-changing call made through syscall(2),
 * and io_uring (io_uring_setup aborts the process: its writes would be invisible here).
 * Writes through an fd the shim did not see opened (libc's own fopen) are not seen: the
 * replay compares its result with the real directory at the end and fails on any difference.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define REAL(name) ((__typeof__(&name))real_symbol(#name))
#define REAL_SSL(name, type) ((type)real_symbol(#name))

static void* real_symbol(const char* name) {
  void* symbol = dlsym(RTLD_NEXT, name);
  if (symbol == NULL) {
    fprintf(stderr, "recorder: no symbol %s\n", name);
    abort();
  }
  return symbol;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = -1;
static unsigned long long sequence = 0;
static char root[PATH_MAX];
static size_t root_length = 0;
static int enabled = 0;

/* Per descriptor: 0 unknown, 1 tracked (opened under root), 2 ignored, 3 socket,
 * 4 an untracked file under root (its writes are refused). */
enum { kUnknown = 0, kTracked = 1, kIgnored = 2, kSocket = 3, kUntracked = 4 };
#define MAX_FDS 65536
static unsigned char fd_kind[MAX_FDS];
static unsigned long long fd_ino[MAX_FDS];
static unsigned char fd_sync[MAX_FDS]; /* O_SYNC or O_DSYNC: each write is a sync */

__attribute__((constructor)) static void recorder_init(void) {
  const char* log_path = getenv("SMTPSD_RECORD_LOG");
  const char* root_path = getenv("SMTPSD_RECORD_ROOT");
  if (log_path == NULL || root_path == NULL) return;
  size_t n = strlen(root_path);
  if (n == 0 || n >= sizeof root || root_path[0] != '/') {
    fprintf(stderr, "recorder: SMTPSD_RECORD_ROOT must be an absolute path\n");
    abort();
  }
  memcpy(root, root_path, n + 1);
  while (n > 1 && root[n - 1] == '/')
    root[--n] = '\0';
  root_length = n;
  int (*real_open)(const char*, int, ...) = REAL(open);
  log_fd = real_open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    fprintf(stderr, "recorder: cannot open %s: %s\n", log_path, strerror(errno));
    abort();
  }
  enabled = 1;
}

static long thread_id(void) {
  return (long)REAL(syscall)(SYS_gettid);
}

static void encode(char* out, size_t size, const char* text) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (const unsigned char* p = (const unsigned char*)text; *p && o + 4 < size; ++p) {
    if (*p <= 0x20 || *p >= 0x7F || *p == '%') {
      out[o++] = '%';
      out[o++] = hex[*p >> 4];
      out[o++] = hex[*p & 15];
    } else {
      out[o++] = (char)*p;
    }
  }
  out[o] = '\0';
}

/* Writes one record; the caller holds the lock and passes the sequence number. */
static void emit_locked(unsigned long long seq, char op, const char* fields, const void* data,
                        size_t n) {
  char head[3 * PATH_MAX * 2 + 256];
  int length = snprintf(head, sizeof head, "%llu %c %d %ld %s %zu\n", seq, op, (int)getpid(),
                        thread_id(), fields, n);
  struct iovec parts[3] = {{head, (size_t)length}, {(void*)data, n}, {"\n", 1}};
  ssize_t (*real_writev)(int, const struct iovec*, int) = REAL(writev);
  size_t total = (size_t)length + n + 1;
  ssize_t written = real_writev(log_fd, parts, 3);
  if (written < 0 || (size_t)written != total) {
    fprintf(stderr, "recorder: cannot write the log\n");
    abort();
  }
}

static void emit(char op, const char* fields, const void* data, size_t n) {
  pthread_mutex_lock(&lock);
  emit_locked(++sequence, op, fields, data, n);
  pthread_mutex_unlock(&lock);
}

static unsigned long long sync_begins(void) {
  pthread_mutex_lock(&lock);
  unsigned long long start = sequence;
  pthread_mutex_unlock(&lock);
  return start;
}

static void refuse(const char* what) {
  emit('X', "refused", what, strlen(what));
  fprintf(stderr, "recorder: refused: %s\n", what);
}

/* The absolute path of name relative to dirfd (AT_FDCWD or a directory descriptor). */
static int absolute(int dirfd, const char* name, char* out, size_t size) {
  if (name == NULL) return -1;
  if (name[0] == '/') {
    snprintf(out, size, "%s", name);
    return 0;
  }
  char base[PATH_MAX];
  if (dirfd == AT_FDCWD) {
    if (getcwd(base, sizeof base) == NULL) return -1;
  } else {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
    ssize_t n = readlink(link, base, sizeof base - 1);
    if (n < 0) return -1;
    base[n] = '\0';
  }
  if (name[0] == '\0') {
    snprintf(out, size, "%s", base);
  } else {
    snprintf(out, size, "%s/%s", base, name);
  }
  return 0;
}

static int under_root(const char* path) {
  return strncmp(path, root, root_length) == 0 &&
         (path[root_length] == '/' || path[root_length] == '\0');
}

static int fd_path(int fd, char* out, size_t size) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, out, size - 1);
  if (n < 0) return -1;
  out[n] = '\0';
  return 0;
}

/* What a descriptor is, found once (reset when it is closed). */
static int classify(int fd) {
  if (fd < 0 || fd >= MAX_FDS) return kIgnored;
  if (fd_kind[fd] != kUnknown) return fd_kind[fd];
  struct stat status;
  int kind = kIgnored;
  if (fstat(fd, &status) == 0) {
    if (S_ISSOCK(status.st_mode)) {
      kind = kSocket;
    } else if (S_ISREG(status.st_mode) || S_ISDIR(status.st_mode)) {
      char path[PATH_MAX];
      if (fd_path(fd, path, sizeof path) == 0 && under_root(path)) kind = kUntracked;
    }
  }
  fd_kind[fd] = (unsigned char)kind;
  return kind;
}

static void opened(int fd, int dirfd, const char* name, int flags, mode_t mode) {
  if (!enabled || fd < 0 || fd >= MAX_FDS) return;
  char path[PATH_MAX];
  if (absolute(dirfd, name, path, sizeof path) != 0 || !under_root(path)) {
    fd_kind[fd] = kUnknown; /* classify() decides (a socket, or not ours) */
    return;
  }
  if ((flags & O_TMPFILE) == O_TMPFILE) {
    refuse("O_TMPFILE");
    return;
  }
  struct stat status;
  if (fstat(fd, &status) != 0) return;
  fd_kind[fd] = kTracked;
  fd_ino[fd] = (unsigned long long)status.st_ino;
  fd_sync[fd] = (flags & (O_SYNC | O_DSYNC)) != 0;
  char encoded[3 * PATH_MAX];
  encode(encoded, sizeof encoded, path);
  char fields[3 * PATH_MAX + 64];
  snprintf(fields, sizeof fields, "%s %d %o %llu", encoded, flags, (unsigned)mode, fd_ino[fd]);
  emit('O', fields, NULL, 0);
}

static void record_sync_fd(int fd, unsigned long long start, char kind);

/* A completed write of n octets at offset to a tracked descriptor. */
static void wrote(int fd, long long offset, const void* data, size_t n) {
  char fields[96];
  snprintf(fields, sizeof fields, "%llu %lld", fd_ino[fd], offset);
  if (fd_sync[fd]) {
    /* O_SYNC: the write is its own sync; recorded as a write then a sync that covers it. */
    pthread_mutex_lock(&lock);
    unsigned long long seq = ++sequence;
    emit_locked(seq, 'W', fields, data, n);
    pthread_mutex_unlock(&lock);
    record_sync_fd(fd, seq, 'd');
    return;
  }
  emit('W', fields, data, n);
}

static void scan_for_acknowledgements(const char* data, size_t n) {
  static const char marker[] = "250 2.0.0 Ok: queued as ";
  const size_t m = sizeof marker - 1;
  const char* end = data + n;
  for (const char* p = data; p != NULL && (size_t)(end - p) >= m;) {
    p = memmem(p, (size_t)(end - p), marker, m);
    if (p == NULL) break;
    p += m;
    char id[80];
    size_t k = 0;
    while (p < end && k + 1 < sizeof id &&
           ((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))) {
      id[k++] = *p++;
    }
    id[k] = '\0';
    if (k > 0) emit('K', id, NULL, 0);
  }
}

static void before_socket_write(int fd, const struct iovec* parts, int count) {
  if (!enabled || classify(fd) != kSocket) return;
  for (int i = 0; i < count; ++i)
    scan_for_acknowledgements(parts[i].iov_base, parts[i].iov_len);
}

/* The octets of an iovec array, the first n of them, gathered. */
static void wrote_vector(int fd, long long offset, const struct iovec* parts, int count, size_t n) {
  char* buffer = malloc(n ? n : 1);
  if (buffer == NULL) abort();
  size_t at = 0;
  for (int i = 0; i < count && at < n; ++i) {
    size_t take = parts[i].iov_len < n - at ? parts[i].iov_len : n - at;
    memcpy(buffer + at, parts[i].iov_base, take);
    at += take;
  }
  wrote(fd, offset, buffer, n);
  free(buffer);
}

static int tracked(int fd) {
  if (!enabled) return 0;
  int kind = classify(fd);
  if (kind == kUntracked) {
    char what[128];
    snprintf(what, sizeof what, "a change through descriptor %d, not seen opened", fd);
    refuse(what);
    return 0;
  }
  return kind == kTracked;
}

/* open and friends ------------------------------------------------------------------ */

static mode_t mode_argument(int flags, va_list args) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(args, int) : 0;
}

int open(const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  mode_t mode = mode_argument(flags, args);
  va_end(args);
  int fd = REAL(open)(path, flags, mode);
  opened(fd, AT_FDCWD, path, flags, mode);
  return fd;
}

int open64(const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  mode_t mode = mode_argument(flags, args);
  va_end(args);
  int fd = REAL(open64)(path, flags, mode);
  opened(fd, AT_FDCWD, path, flags, mode);
  return fd;
}

int openat(int dirfd, const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  mode_t mode = mode_argument(flags, args);
  va_end(args);
  int fd = REAL(openat)(dirfd, path, flags, mode);
  opened(fd, dirfd, path, flags, mode);
  return fd;
}

int openat64(int dirfd, const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  mode_t mode = mode_argument(flags, args);
  va_end(args);
  int fd = REAL(openat64)(dirfd, path, flags, mode);
  opened(fd, dirfd, path, flags, mode);
  return fd;
}

int __open_2(const char* path, int flags) {
  int fd = REAL(__open_2)(path, flags);
  opened(fd, AT_FDCWD, path, flags, 0);
  return fd;
}

int __open64_2(const char* path, int flags) {
  int fd = REAL(__open64_2)(path, flags);
  opened(fd, AT_FDCWD, path, flags, 0);
  return fd;
}

int __openat_2(int dirfd, const char* path, int flags) {
  int fd = REAL(__openat_2)(dirfd, path, flags);
  opened(fd, dirfd, path, flags, 0);
  return fd;
}

int __openat64_2(int dirfd, const char* path, int flags) {
  int fd = REAL(__openat64_2)(dirfd, path, flags);
  opened(fd, dirfd, path, flags, 0);
  return fd;
}

int creat(const char* path, mode_t mode) {
  int fd = REAL(creat)(path, mode);
  opened(fd, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
  return fd;
}

int creat64(const char* path, mode_t mode) {
  int fd = REAL(creat64)(path, mode);
  opened(fd, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
  return fd;
}

static void forget(int fd) {
  if (fd >= 0 && fd < MAX_FDS) {
    fd_kind[fd] = kUnknown;
    fd_sync[fd] = 0;
  }
}

static void copy_descriptor(int from, int to) {
  if (from < 0 || from >= MAX_FDS || to < 0 || to >= MAX_FDS) return;
  fd_kind[to] = fd_kind[from];
  fd_ino[to] = fd_ino[from];
  fd_sync[to] = fd_sync[from];
}

int close(int fd) {
  forget(fd);
  return REAL(close)(fd);
}

int dup(int fd) {
  int copy = REAL(dup)(fd);
  if (copy >= 0) copy_descriptor(fd, copy);
  return copy;
}

int dup2(int fd, int to) {
  int copy = REAL(dup2)(fd, to);
  if (copy >= 0) copy_descriptor(fd, copy);
  return copy;
}

int dup3(int fd, int to, int flags) {
  int copy = REAL(dup3)(fd, to, flags);
  if (copy >= 0) copy_descriptor(fd, copy);
  return copy;
}

int fcntl(int fd, int command, ...) {
  va_list args;
  va_start(args, command);
  long argument = va_arg(args, long);
  va_end(args);
  int result = REAL(fcntl)(fd, command, argument);
  if (result >= 0 && (command == F_DUPFD || command == F_DUPFD_CLOEXEC)) {
    copy_descriptor(fd, result);
  }
  if (result >= 0 && command == F_SETFL && (argument & (O_SYNC | O_DSYNC)) && tracked(fd)) {
    fd_sync[fd] = 1;
  }
  return result;
}

int fcntl64(int fd, int command, ...) {
  va_list args;
  va_start(args, command);
  long argument = va_arg(args, long);
  va_end(args);
  return fcntl(fd, command, argument);
}

/* Descriptors made without open(2): whatever an earlier holder of the number was, found anew. */
int socket(int domain, int type, int protocol) {
  int fd = REAL(socket)(domain, type, protocol);
  forget(fd);
  return fd;
}

int accept(int fd, struct sockaddr* address, socklen_t* length) {
  int result = REAL(accept)(fd, address, length);
  forget(result);
  return result;
}

int accept4(int fd, struct sockaddr* address, socklen_t* length, int flags) {
  int result = REAL(accept4)(fd, address, length, flags);
  forget(result);
  return result;
}

/* writes ------------------------------------------------------------------------------ */

static long long position_after(int fd, ssize_t n) {
  off_t end = lseek(fd, 0, SEEK_CUR);
  return (long long)end - (long long)n;
}

ssize_t write(int fd, const void* data, size_t n) {
  if (enabled) {
    struct iovec part = {(void*)data, n};
    before_socket_write(fd, &part, 1);
  }
  ssize_t result = REAL(write)(fd, data, n);
  if (result > 0 && tracked(fd)) wrote(fd, position_after(fd, result), data, (size_t)result);
  return result;
}

ssize_t pwrite(int fd, const void* data, size_t n, off_t offset) {
  ssize_t result = REAL(pwrite)(fd, data, n, offset);
  if (result > 0 && tracked(fd)) wrote(fd, (long long)offset, data, (size_t)result);
  return result;
}

ssize_t pwrite64(int fd, const void* data, size_t n, off64_t offset) {
  ssize_t result = REAL(pwrite64)(fd, data, n, offset);
  if (result > 0 && tracked(fd)) wrote(fd, (long long)offset, data, (size_t)result);
  return result;
}

ssize_t writev(int fd, const struct iovec* parts, int count) {
  before_socket_write(fd, parts, count);
  ssize_t result = REAL(writev)(fd, parts, count);
  if (result > 0 && tracked(fd)) {
    wrote_vector(fd, position_after(fd, result), parts, count, (size_t)result);
  }
  return result;
}

ssize_t pwritev(int fd, const struct iovec* parts, int count, off_t offset) {
  ssize_t result = REAL(pwritev)(fd, parts, count, offset);
  if (result > 0 && tracked(fd)) wrote_vector(fd, (long long)offset, parts, count, (size_t)result);
  return result;
}

ssize_t pwritev64(int fd, const struct iovec* parts, int count, off64_t offset) {
  ssize_t result = REAL(pwritev64)(fd, parts, count, offset);
  if (result > 0 && tracked(fd)) wrote_vector(fd, (long long)offset, parts, count, (size_t)result);
  return result;
}

ssize_t pwritev2(int fd, const struct iovec* parts, int count, off_t offset, int flags) {
  long long before = offset == -1 ? (long long)lseek(fd, 0, SEEK_CUR) : (long long)offset;
  ssize_t result = REAL(pwritev2)(fd, parts, count, offset, flags);
  if (result > 0 && tracked(fd)) {
    if (offset == -1) before = position_after(fd, result);
    wrote_vector(fd, before, parts, count, (size_t)result);
    if (flags & (RWF_SYNC | RWF_DSYNC)) record_sync_fd(fd, sync_begins(), 'd');
  }
  return result;
}

ssize_t pwritev64v2(int fd, const struct iovec* parts, int count, off64_t offset, int flags) {
  return pwritev2(fd, parts, count, (off_t)offset, flags);
}

ssize_t send(int fd, const void* data, size_t n, int flags) {
  if (enabled) {
    struct iovec part = {(void*)data, n};
    before_socket_write(fd, &part, 1);
  }
  return REAL(send)(fd, data, n, flags);
}

ssize_t sendto(int fd, const void* data, size_t n, int flags, const struct sockaddr* to,
               socklen_t length) {
  if (enabled) {
    struct iovec part = {(void*)data, n};
    before_socket_write(fd, &part, 1);
  }
  return REAL(sendto)(fd, data, n, flags, to, length);
}

ssize_t sendmsg(int fd, const struct msghdr* message, int flags) {
  if (enabled && message != NULL) {
    before_socket_write(fd, message->msg_iov, (int)message->msg_iovlen);
  }
  return REAL(sendmsg)(fd, message, flags);
}

/* TLS: the 250 is in the plaintext given to OpenSSL (libssl is linked dynamically, so its
 * entry points can be interposed like libc's). Scanned before it is encrypted and sent. */
int SSL_write(void* ssl, const void* data, int n) {
  if (enabled && n > 0) scan_for_acknowledgements(data, (size_t)n);
  return REAL_SSL(SSL_write, int (*)(void*, const void*, int))(ssl, data, n);
}

int SSL_write_ex(void* ssl, const void* data, size_t n, size_t* written) {
  if (enabled && n > 0) scan_for_acknowledgements(data, n);
  return REAL_SSL(SSL_write_ex, int (*)(void*, const void*, size_t, size_t*))(ssl, data, n,
                                                                              written);
}

ssize_t copy_file_range(int in, off64_t* in_offset, int out, off64_t* out_offset, size_t n,
                        unsigned flags) {
  long long source_at = in_offset ? (long long)*in_offset : (long long)lseek(in, 0, SEEK_CUR);
  long long target_at = out_offset ? (long long)*out_offset : -1;
  ssize_t result = REAL(copy_file_range)(in, in_offset, out, out_offset, n, flags);
  if (result > 0 && tracked(out)) {
    if (target_at < 0) target_at = position_after(out, result);
    /* The octets copied, read back from the source (pread does not move its offset). */
    char* buffer = malloc((size_t)result);
    if (buffer == NULL) abort();
    ssize_t got = REAL(pread)(in, buffer, (size_t)result, (off_t)source_at);
    if (got != result) {
      free(buffer);
      refuse("copy_file_range whose source cannot be read back");
      return result;
    }
    wrote(out, target_at, buffer, (size_t)result);
    free(buffer);
  }
  return result;
}

ssize_t sendfile(int out, int in, off_t* offset, size_t n) {
  if (tracked(out)) refuse("sendfile into a file");
  return REAL(sendfile)(out, in, offset, n);
}

ssize_t sendfile64(int out, int in, off64_t* offset, size_t n) {
  if (tracked(out)) refuse("sendfile into a file");
  return REAL(sendfile64)(out, in, offset, n);
}

ssize_t splice(int in, off64_t* in_offset, int out, off64_t* out_offset, size_t n, unsigned flags) {
  if (tracked(out)) refuse("splice into a file");
  return REAL(splice)(in, in_offset, out, out_offset, n, flags);
}

void* mmap(void* address, size_t n, int protection, int flags, int fd, off_t offset) {
  if (fd >= 0 && (protection & PROT_WRITE) && (flags & MAP_SHARED) && tracked(fd)) {
    refuse("a shared writable mapping of a file");
  }
  return REAL(mmap)(address, n, protection, flags, fd, offset);
}

void* mmap64(void* address, size_t n, int protection, int flags, int fd, off64_t offset) {
  if (fd >= 0 && (protection & PROT_WRITE) && (flags & MAP_SHARED) && tracked(fd)) {
    refuse("a shared writable mapping of a file");
  }
  return REAL(mmap64)(address, n, protection, flags, fd, offset);
}

static void truncated(int fd, long long length) {
  char fields[64];
  snprintf(fields, sizeof fields, "%llu %lld", fd_ino[fd], length);
  emit('T', fields, NULL, 0);
}

int ftruncate(int fd, off_t length) {
  int result = REAL(ftruncate)(fd, length);
  if (result == 0 && tracked(fd)) truncated(fd, (long long)length);
  return result;
}

int ftruncate64(int fd, off64_t length) {
  int result = REAL(ftruncate64)(fd, length);
  if (result == 0 && tracked(fd)) truncated(fd, (long long)length);
  return result;
}

static void truncated_path(const char* path) {
  char full[PATH_MAX];
  if (!enabled || absolute(AT_FDCWD, path, full, sizeof full) != 0 || !under_root(full)) return;
  refuse("truncate(2) by path");
}

int truncate(const char* path, off_t length) {
  truncated_path(path);
  return REAL(truncate)(path, length);
}

int truncate64(const char* path, off64_t length) {
  truncated_path(path);
  return REAL(truncate64)(path, length);
}

static void allocated(int fd, int mode, long long offset, long long length) {
  if (mode & ~FALLOC_FL_KEEP_SIZE) {
    refuse("fallocate with a mode that changes data");
    return;
  }
  char fields[96];
  snprintf(fields, sizeof fields, "%llu %d %lld %lld", fd_ino[fd], mode, offset, length);
  emit('F', fields, NULL, 0);
}

int fallocate(int fd, int mode, off_t offset, off_t length) {
  int result = REAL(fallocate)(fd, mode, offset, length);
  if (result == 0 && tracked(fd)) allocated(fd, mode, (long long)offset, (long long)length);
  return result;
}

int fallocate64(int fd, int mode, off64_t offset, off64_t length) {
  int result = REAL(fallocate64)(fd, mode, offset, length);
  if (result == 0 && tracked(fd)) allocated(fd, mode, (long long)offset, (long long)length);
  return result;
}

int posix_fallocate(int fd, off_t offset, off_t length) {
  int result = REAL(posix_fallocate)(fd, offset, length);
  if (result == 0 && tracked(fd)) allocated(fd, 0, (long long)offset, (long long)length);
  return result;
}

/* names ------------------------------------------------------------------------------- */

/* Records op with the absolute paths of (dirfd, name) [and (dirfd2, name2)] when either is
 * under root. */
static void named(char op, int dirfd, const char* name, int dirfd2, const char* name2,
                  const char* extra) {
  if (!enabled) return;
  char first[PATH_MAX], second[PATH_MAX];
  if (absolute(dirfd, name, first, sizeof first) != 0) return;
  int mine = under_root(first);
  if (name2 != NULL) {
    if (absolute(dirfd2, name2, second, sizeof second) != 0) return;
    mine = mine || under_root(second);
  }
  if (!mine) return;
  char encoded_first[3 * PATH_MAX], encoded_second[3 * PATH_MAX];
  char fields[6 * PATH_MAX + 64];
  encode(encoded_first, sizeof encoded_first, first);
  if (name2 != NULL) {
    encode(encoded_second, sizeof encoded_second, second);
    snprintf(fields, sizeof fields, "%s %s%s%s", encoded_first, encoded_second, extra ? " " : "",
             extra ? extra : "");
  } else {
    snprintf(fields, sizeof fields, "%s%s%s", encoded_first, extra ? " " : "", extra ? extra : "");
  }
  emit(op, fields, NULL, 0);
}

int rename(const char* old_path, const char* new_path) {
  int result = REAL(rename)(old_path, new_path);
  if (result == 0) named('R', AT_FDCWD, old_path, AT_FDCWD, new_path, "0");
  return result;
}

int renameat(int old_dir, const char* old_path, int new_dir, const char* new_path) {
  int result = REAL(renameat)(old_dir, old_path, new_dir, new_path);
  if (result == 0) named('R', old_dir, old_path, new_dir, new_path, "0");
  return result;
}

int renameat2(int old_dir, const char* old_path, int new_dir, const char* new_path,
              unsigned flags) {
  if (enabled && (flags & RENAME_EXCHANGE)) {
    char full[PATH_MAX];
    if (absolute(old_dir, old_path, full, sizeof full) == 0 && under_root(full)) {
      refuse("RENAME_EXCHANGE");
    }
  }
  int result = REAL(renameat2)(old_dir, old_path, new_dir, new_path, flags);
  if (result == 0) {
    char extra[16];
    snprintf(extra, sizeof extra, "%u", flags);
    named('R', old_dir, old_path, new_dir, new_path, extra);
  }
  return result;
}

int link(const char* old_path, const char* new_path) {
  int result = REAL(link)(old_path, new_path);
  if (result == 0) named('L', AT_FDCWD, old_path, AT_FDCWD, new_path, NULL);
  return result;
}

int linkat(int old_dir, const char* old_path, int new_dir, const char* new_path, int flags) {
  if (enabled && (flags & AT_EMPTY_PATH)) {
    char full[PATH_MAX];
    if (absolute(new_dir, new_path, full, sizeof full) == 0 && under_root(full)) {
      refuse("linkat(AT_EMPTY_PATH)");
    }
  }
  int result = REAL(linkat)(old_dir, old_path, new_dir, new_path, flags);
  if (result == 0) named('L', old_dir, old_path, new_dir, new_path, NULL);
  return result;
}

int unlink(const char* path) {
  int result = REAL(unlink)(path);
  if (result == 0) named('U', AT_FDCWD, path, 0, NULL, NULL);
  return result;
}

int unlinkat(int dirfd, const char* path, int flags) {
  int result = REAL(unlinkat)(dirfd, path, flags);
  if (result == 0) named((flags & AT_REMOVEDIR) ? 'D' : 'U', dirfd, path, 0, NULL, NULL);
  return result;
}

int rmdir(const char* path) {
  int result = REAL(rmdir)(path);
  if (result == 0) named('D', AT_FDCWD, path, 0, NULL, NULL);
  return result;
}

int mkdir(const char* path, mode_t mode) {
  int result = REAL(mkdir)(path, mode);
  char octal[16];
  snprintf(octal, sizeof octal, "%o", (unsigned)mode);
  if (result == 0) named('M', AT_FDCWD, path, 0, NULL, octal);
  return result;
}

int mkdirat(int dirfd, const char* path, mode_t mode) {
  int result = REAL(mkdirat)(dirfd, path, mode);
  char octal[16];
  snprintf(octal, sizeof octal, "%o", (unsigned)mode);
  if (result == 0) named('M', dirfd, path, 0, NULL, octal);
  return result;
}

/* syncs ------------------------------------------------------------------------------- */

static void record_sync_fd(int fd, unsigned long long start, char kind) {
  char path[PATH_MAX];
  if (fd_path(fd, path, sizeof path) != 0 || !under_root(path)) return;
  struct stat status;
  if (fstat(fd, &status) != 0) return;
  char encoded[3 * PATH_MAX];
  encode(encoded, sizeof encoded, path);
  char fields[3 * PATH_MAX + 96];
  snprintf(fields, sizeof fields, "%llu %llu %s %c", start, (unsigned long long)status.st_ino,
           encoded, kind);
  emit('S', fields, NULL, 0);
}

int fsync(int fd) {
  unsigned long long start = enabled ? sync_begins() : 0;
  int result = REAL(fsync)(fd);
  if (result == 0 && enabled) record_sync_fd(fd, start, 'f');
  return result;
}

int fdatasync(int fd) {
  unsigned long long start = enabled ? sync_begins() : 0;
  int result = REAL(fdatasync)(fd);
  if (result == 0 && enabled) record_sync_fd(fd, start, 'd');
  return result;
}

static void synced_everything(unsigned long long start) {
  char fields[32];
  snprintf(fields, sizeof fields, "%llu", start);
  emit('Y', fields, NULL, 0);
}

int syncfs(int fd) {
  unsigned long long start = enabled ? sync_begins() : 0;
  int result = REAL(syncfs)(fd);
  if (result == 0 && enabled) synced_everything(start);
  return result;
}

void sync(void) {
  unsigned long long start = enabled ? sync_begins() : 0;
  REAL(sync)();
  if (enabled) synced_everything(start);
}

int sync_file_range(int fd, off64_t offset, off64_t n, unsigned flags) {
  /* Not a sync (no metadata, no disk cache flush): passed through, recorded as nothing. */
  return REAL(sync_file_range)(fd, offset, n, flags);
}

/* syscall(2): file-changing calls made this way would go unseen, so they are refused; an
 * io_uring instance aborts the process, loudly (nothing it writes or syncs is seen here). */
long syscall(long number, ...) {
  va_list args;
  va_start(args, number);
  long a = va_arg(args, long), b = va_arg(args, long), c = va_arg(args, long);
  long d = va_arg(args, long), e = va_arg(args, long), f = va_arg(args, long);
  va_end(args);
  if (enabled) {
    switch (number) {
      case SYS_io_uring_setup:
        refuse("io_uring_setup");
        fprintf(stderr, "recorder: io_uring is not observable by this recorder; aborting\n");
        abort();
      case SYS_write:
      case SYS_pwrite64:
      case SYS_writev:
      case SYS_pwritev:
      case SYS_pwritev2:
      case SYS_open:
      case SYS_openat:
      case SYS_creat:
      case SYS_rename:
      case SYS_renameat:
      case SYS_renameat2:
      case SYS_link:
      case SYS_linkat:
      case SYS_unlink:
      case SYS_unlinkat:
      case SYS_mkdir:
      case SYS_mkdirat:
      case SYS_rmdir:
      case SYS_fsync:
      case SYS_fdatasync:
      case SYS_syncfs:
      case SYS_ftruncate:
      case SYS_truncate:
      case SYS_fallocate:
      case SYS_copy_file_range:
      case SYS_sendfile:
      case SYS_splice:
#ifdef SYS_openat2
      case SYS_openat2:
#endif
      {
        char what[64];
        snprintf(what, sizeof what, "syscall(%ld), a file call the recorder cannot see", number);
        refuse(what);
      } break;
      default:
        break;
    }
  }
  return REAL(syscall)(number, a, b, c, d, e, f);
}
