/* drop_sync.c — a chosen mutation the power-loss simulation must catch: fsync(2),
 * fdatasync(2) or syncfs(2) returns success without syncing for the calls chosen by the
 * environment, and every other call goes on to the next definition (the recorder, preloaded
 * after this shim, then sees only the syncs that really happened). Built by
 * tests/integration/power_loss.py; never part of smtpsd. syncfs(2) counts as a sync of the
 * descriptor it is given.
 *
 *   SMTPSD_DROP_SYNC_KIND=file|dir|any   which descriptors count (default any)
 *   SMTPSD_DROP_SYNC_MATCH=<text>        only those whose path contains it (default all)
 *   SMTPSD_DROP_SYNC_NTH=<n>             drop only the n-th counted call (1-based);
 *                                        0 or unset drops every counted call
 *   SMTPSD_DROP_SYNC_CALL=<name>         only calls of this function count (default all)
 *   SMTPSD_DROP_SYNC_FAIL=<errno>        a dropped call fails with this errno (-1) instead
 *                                        of returning success: what a failing disk does
 *
 * Each dropped call is reported on stderr ("drop_sync: dropped fsync of <path>", or "failed"
 * for SMTPSD_DROP_SYNC_FAIL), so a test can tell that the mutation happened.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counted = 0;

static int dropped(int fd, const char* call) {
  const char* kind = getenv("SMTPSD_DROP_SYNC_KIND");
  const char* match = getenv("SMTPSD_DROP_SYNC_MATCH");
  const char* nth_text = getenv("SMTPSD_DROP_SYNC_NTH");
  const char* only = getenv("SMTPSD_DROP_SYNC_CALL");
  long nth = nth_text ? atol(nth_text) : 0;
  if (only && *only && strcmp(only, call) != 0) return 0;
  struct stat status;
  if (fstat(fd, &status) != 0) return 0;
  if (kind && strcmp(kind, "file") == 0 && S_ISDIR(status.st_mode)) return 0;
  if (kind && strcmp(kind, "dir") == 0 && !S_ISDIR(status.st_mode)) return 0;
  char link[64], path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n < 0) return 0;
  path[n] = '\0';
  if (match && *match && strstr(path, match) == NULL) return 0;
  pthread_mutex_lock(&lock);
  long number = ++counted;
  pthread_mutex_unlock(&lock);
  if (nth > 0 && number != nth) return 0;
  const char* fail = getenv("SMTPSD_DROP_SYNC_FAIL");
  fprintf(stderr, "drop_sync: %s %s of %s\n", fail ? "failed" : "dropped", call, path);
  return 1;
}

/* What a dropped call returns: success, or the failure SMTPSD_DROP_SYNC_FAIL asks for. */
static int dropped_result(void) {
  const char* fail = getenv("SMTPSD_DROP_SYNC_FAIL");
  if (!fail) return 0;
  errno = atoi(fail);
  return -1;
}

int fsync(int fd) {
  if (dropped(fd, "fsync")) return dropped_result();
  int (*next)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  return next(fd);
}

int fdatasync(int fd) {
  if (dropped(fd, "fdatasync")) return dropped_result();
  int (*next)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  return next(fd);
}

/* syncfs through a file counts as a sync of that file (Maildir syncs a batch of copies so,
 * through the first one's descriptor): dropping it leaves every file of the batch unsynced. */
int syncfs(int fd) {
  if (dropped(fd, "syncfs")) return dropped_result();
  int (*next)(int) = (int (*)(int))dlsym(RTLD_NEXT, "syncfs");
  return next(fd);
}
