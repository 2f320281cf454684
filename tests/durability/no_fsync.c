/* no_fsync.c — the mutation the durability tests must catch: fsync(2), fdatasync(2) and
 * syncfs(2) return success without syncing anything (LD_PRELOAD=no_fsync.so smtpsd ...).
 * Built by tests/integration/test_durability.py with the system's cc; never part of smtpsd. */
int fsync(int fd) {
  (void)fd;
  return 0;
}
int fdatasync(int fd) {
  (void)fd;
  return 0;
}
int syncfs(int fd) {
  (void)fd;
  return 0;
}
