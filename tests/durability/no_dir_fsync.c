/* no_dir_fsync.c — a finer mutation the durability tests must catch: file contents are
 * still synced, but fsync(2) of a directory (which makes a new or renamed entry durable)
 * returns success without syncing. LD_PRELOAD=no_dir_fsync.so smtpsd ... */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/stat.h>

int fsync(int fd) {
  struct stat status;
  if (fstat(fd, &status) == 0 && S_ISDIR(status.st_mode)) return 0;
  int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  return real(fd);
}
