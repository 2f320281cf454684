// Tests for acme/certificate_files.cpp and acme::prepare_files: keys made once (0600) and
// kept, the placeholder, CSRs with every name, and chains checked against their key.
#include "acme/certificate_files.h"

#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "acme/renewal.h"

namespace {

class AcmeFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("acme-files-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

mode_t mode_of(const std::string& path) {
  struct stat info {};
  ::stat(path.c_str(), &info);
  return info.st_mode & 0777;
}

TEST_F(AcmeFilesTest, PrepareMakesKeysOncePlaceholdersAndKeepsThem) {
  ASSERT_TRUE(acme::prepare_files(dir_.string(), {"mx.example.org"}).has_value());
  EXPECT_EQ(mode_of(dir_.string()), 0700u);
  EXPECT_EQ(mode_of(path("account.key")), 0600u);
  EXPECT_EQ(mode_of(path("ecdsa.key")), 0600u);
  EXPECT_EQ(mode_of(path("rsa.key")), 0600u);
  auto key = acme::load_or_create_key(path("ecdsa.key"), acme::KeyType::kEcdsaP256);
  ASSERT_TRUE(key.has_value());
  auto chain = acme::read_file(path("ecdsa.crt"));
  ASSERT_TRUE(chain.has_value());
  auto info = acme::inspect_chain(chain.value(), key->get());
  ASSERT_TRUE(info.has_value()) << info.error();
  EXPECT_TRUE(info->self_signed);
  EXPECT_EQ(info->certificates, 1u);
  // A second start keeps every file as it is.
  const std::string ecdsa_key = acme::read_file(path("ecdsa.key")).value();
  const std::string rsa_chain = acme::read_file(path("rsa.crt")).value();
  ASSERT_TRUE(acme::prepare_files(dir_.string(), {"mx.example.org"}).has_value());
  EXPECT_EQ(acme::read_file(path("ecdsa.key")).value(), ecdsa_key);
  EXPECT_EQ(acme::read_file(path("rsa.crt")).value(), rsa_chain);
}

TEST_F(AcmeFilesTest, AChainThatIsNotTheKeysIsReplacedByAPlaceholder) {
  ASSERT_TRUE(acme::prepare_files(dir_.string(), {"mx.example.org"}).has_value());
  // The RSA chain over the ECDSA one: it does not belong to ecdsa.key.
  std::filesystem::copy_file(path("rsa.crt"), path("ecdsa.crt"),
                             std::filesystem::copy_options::overwrite_existing);
  ASSERT_TRUE(acme::prepare_files(dir_.string(), {"mx.example.org"}).has_value());
  auto key = acme::load_or_create_key(path("ecdsa.key"), acme::KeyType::kEcdsaP256);
  EXPECT_TRUE(acme::inspect_chain(acme::read_file(path("ecdsa.crt")).value(), key->get()));
}

TEST_F(AcmeFilesTest, AKeyOfTheWrongTypeIsAnErrorNeverOverwritten) {
  std::filesystem::create_directories(dir_);
  ASSERT_TRUE(acme::load_or_create_key(path("x.key"), acme::KeyType::kEcdsaP256).has_value());
  const std::string before = acme::read_file(path("x.key")).value();
  auto wrong = acme::load_or_create_key(path("x.key"), acme::KeyType::kRsa2048);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_NE(wrong.error().find("not an rsa key"), std::string::npos) << wrong.error();
  EXPECT_EQ(acme::read_file(path("x.key")).value(), before);
  std::ofstream(path("junk.key")) << "junk";
  EXPECT_FALSE(acme::load_or_create_key(path("junk.key"), acme::KeyType::kRsa2048).has_value());
}

TEST_F(AcmeFilesTest, TheCsrNamesEveryName) {
  std::filesystem::create_directories(dir_);
  auto key = acme::load_or_create_key(path("c.key"), acme::KeyType::kEcdsaP256);
  ASSERT_TRUE(key.has_value());
  auto csr = acme::make_csr(key->get(), {"mx.example.org", "mail.example.org"});
  ASSERT_TRUE(csr.has_value()) << csr.error();
  const unsigned char* cursor = reinterpret_cast<const unsigned char*>(csr->data());
  X509_REQ* request = d2i_X509_REQ(nullptr, &cursor, static_cast<long>(csr->size()));
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(X509_REQ_verify(request, key->get()), 1);
  STACK_OF(X509_EXTENSION)* extensions = X509_REQ_get_extensions(request);
  auto* names = static_cast<GENERAL_NAMES*>(
      X509V3_get_d2i(extensions, NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(names, nullptr);
  ASSERT_EQ(sk_GENERAL_NAME_num(names), 2);
  auto dns_name = [&](int i) {
    const ASN1_IA5STRING* text = sk_GENERAL_NAME_value(names, i)->d.dNSName;
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                       static_cast<std::size_t>(ASN1_STRING_length(text)));
  };
  EXPECT_EQ(dns_name(0), "mx.example.org");
  EXPECT_EQ(dns_name(1), "mail.example.org");
  GENERAL_NAMES_free(names);
  sk_X509_EXTENSION_pop_free(extensions, X509_EXTENSION_free);
  X509_REQ_free(request);
}

TEST_F(AcmeFilesTest, AChainMustBelongToTheKey) {
  std::filesystem::create_directories(dir_);
  auto key = acme::load_or_create_key(path("a.key"), acme::KeyType::kEcdsaP256);
  auto other = acme::load_or_create_key(path("b.key"), acme::KeyType::kEcdsaP256);
  ASSERT_TRUE(acme::write_placeholder(path("a.crt"), key->get(), {"mx.example.org"}));
  const std::string chain = acme::read_file(path("a.crt")).value();
  EXPECT_TRUE(acme::inspect_chain(chain, key->get()).has_value());
  auto refused = acme::inspect_chain(chain, other->get());
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(), "the certificate does not belong to our key");
  EXPECT_FALSE(acme::inspect_chain("<html>rate limited</html>", nullptr).has_value());
}

}  // namespace
