// openssl_error_test.cpp — tls::last_error_reason(): the root cause of the thread's OpenSSL
// error queue in words, never empty, and the queue left empty.
#include "tls/openssl_error.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>

namespace tls {
namespace {

TEST(LastErrorReason, NeverEmptyAndDrains) {
  ERR_clear_error();
  EXPECT_EQ(last_error_reason(), "unknown OpenSSL error");
  ERR_raise(ERR_LIB_SSL, SSL_R_NO_SHARED_CIPHER);
  ERR_raise(ERR_LIB_SSL, SSL_R_WRONG_VERSION_NUMBER);
  EXPECT_EQ(last_error_reason(), "no shared cipher");  // the first entry: the root cause
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(LastErrorReason, SystemErrorsReadAsStrerror) {
  ERR_clear_error();
  ERR_raise(ERR_LIB_SYS, ENOENT);
  EXPECT_EQ(last_error_reason(), std::strerror(ENOENT));
}

}  // namespace
}  // namespace tls
