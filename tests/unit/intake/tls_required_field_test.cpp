// tls_required_field_test.cpp — intake::says_tls_not_required: the TLS-Required field of
// RFC 8689 §3 in a header section (case, white space, folding, repeats, other values).
#include "intake/tls_required_field.h"

#include <gtest/gtest.h>

namespace intake {
namespace {

TEST(TlsRequiredFieldTest, OnlyAFieldThatSaysNoCounts) {
  EXPECT_TRUE(says_tls_not_required("TLS-Required: No\r\n\r\n"));
  EXPECT_TRUE(says_tls_not_required("From: a@b\r\ntls-required:NO\r\nSubject: s\r\n\r\n"));
  EXPECT_TRUE(says_tls_not_required("TLS-Required : \r\n No \r\n"));  // folded, obsolete space
  EXPECT_TRUE(says_tls_not_required("TLS-Required: No\r\nTLS-Required: no\r\n\r\n"));
  EXPECT_FALSE(says_tls_not_required(""));
  EXPECT_FALSE(says_tls_not_required("Subject: TLS-Required: No\r\n\r\n"));
  EXPECT_FALSE(says_tls_not_required("X-TLS-Required: No\r\n\r\n"));
  EXPECT_FALSE(says_tls_not_required("TLS-Required: Yes\r\n\r\n"));
  EXPECT_FALSE(says_tls_not_required("TLS-Required: No, please\r\n\r\n"));
  EXPECT_FALSE(says_tls_not_required("TLS-Required: No\r\nTLS-Required: Yes\r\n\r\n"));
  // The body is not the header section.
  EXPECT_FALSE(says_tls_not_required("Subject: s\r\n\r\nTLS-Required: No\r\n"));
}

}  // namespace
}  // namespace intake
