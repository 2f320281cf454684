// dialog_test.cpp — runs every tests/dialogs/*.dialog against ServerSession, once with each
// client line in one receive() and once byte by byte. The format is documented in
// tests/dialogs/README.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "fake_host.h"

#ifndef SMTPSD_DIALOG_DIR
#define SMTPSD_DIALOG_DIR "tests/dialogs"
#endif

namespace smtp {
namespace {

using testing::AuthAnswer;
using testing::AuthRequest;
using testing::FakeHost;

std::string unescape(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 >= text.size()) {
      out.push_back(text[i]);
      continue;
    }
    char c = text[++i];
    switch (c) {
      case 'r':
        out.push_back('\r');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'x':
        if (i + 2 < text.size()) {
          out.push_back(
              static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16)));
          i += 2;
        }
        break;
      default:
        out.push_back(c);
        break;
    }
  }
  return out;
}

std::vector<std::string> read_lines(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

// One reply: all its lines, the last one first for prefix matches.
struct ReplyLines {
  std::vector<std::string> lines;
};

std::vector<ReplyLines> split_replies(const std::string& output) {
  std::vector<ReplyLines> replies;
  ReplyLines current;
  std::size_t start = 0;
  while (true) {
    std::size_t end = output.find("\r\n", start);
    if (end == std::string::npos) break;
    std::string line = output.substr(start, end - start);
    start = end + 2;
    bool last = line.size() < 4 || line[3] != '-';
    current.lines.push_back(line);
    if (last) {
      replies.push_back(std::move(current));
      current = ReplyLines{};
    }
  }
  return replies;
}

SessionConfig config_from(const std::vector<std::string>& lines) {
  SessionConfig config;
  config.hostname = "mx.example";
  struct Rule {
    std::string address;
    RecipientVerdict verdict;
  };
  auto rules = std::make_shared<std::vector<Rule>>();
  struct Owner {
    std::string user;
    std::string address;
  };
  auto owners = std::make_shared<std::vector<Owner>>();
  bool relay_when_authenticated = false;
  for (const std::string& line : lines) {
    if (!line.starts_with("@ ")) continue;
    std::istringstream words(line.substr(2));
    std::string key;
    std::string value;
    words >> key >> value;
    SessionLimits& limits = config.limits;
    if (key == "hostname")
      config.hostname = value;
    else if (key == "tls_mode")
      config.tls_mode = value == "required"   ? TlsMode::kStartTlsRequired
                        : value == "implicit" ? TlsMode::kImplicit
                                              : TlsMode::kStartTlsOptional;
    else if (key == "require_auth")
      config.require_auth = value == "yes";
    else if (key == "allow_null_sender")
      config.allow_null_sender = value != "no";
    else if (key == "auth_mechanisms") {
      config.auth_mechanisms.push_back(value);
      std::string more;
      while (words >> more)
        config.auth_mechanisms.push_back(more);
    } else if (key == "may_send_as") {
      std::string address;
      words >> address;
      owners->push_back(Owner{value, address});
    } else if (key == "relay_when_authenticated")
      relay_when_authenticated = value == "yes";
    else if (key == "max_command_line")
      limits.max_command_line = std::stoul(value);
    else if (key == "max_text_line")
      limits.max_text_line = std::stoul(value);
    else if (key == "max_recipients")
      limits.max_recipients = std::stoul(value);
    else if (key == "max_message_size")
      limits.max_message_size = std::stoull(value);
    else if (key == "max_errors")
      limits.max_errors = static_cast<unsigned>(std::stoul(value));
    else if (key == "normalize_bare_line_endings")
      limits.normalize_bare_line_endings = value == "yes";
    else if (key == "reject") {
      std::string kind;
      words >> kind;
      RecipientVerdict verdict = kind == "relay"      ? RecipientVerdict::kRelayDenied
                                 : kind == "tempfail" ? RecipientVerdict::kTempFail
                                                      : RecipientVerdict::kUnknownUser;
      rules->push_back(Rule{value, verdict});
    }
  }
  config.check_recipient = [rules, relay_when_authenticated](std::string_view address,
                                                             std::string_view user) {
    for (const Rule& rule : *rules) {
      if (rule.address != address) continue;
      if (rule.verdict == RecipientVerdict::kRelayDenied && relay_when_authenticated &&
          !user.empty())
        return RecipientVerdict::kAccept;
      return rule.verdict;
    }
    return RecipientVerdict::kAccept;
  };
  if (!owners->empty()) {
    config.may_send_as = [owners](std::string_view user, std::string_view sender) {
      return std::any_of(owners->begin(), owners->end(), [&](const Owner& owner) {
        return owner.user == user && owner.address == sender;
      });
    };
  }
  return config;
}

std::optional<Reply> fail_commit_from(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) {
    if (!line.starts_with("@ fail_commit ")) continue;
    std::istringstream words(line.substr(14));
    Reply reply;
    words >> reply.code >> reply.enhanced;
    std::getline(words >> std::ws, reply.text);
    return reply;
  }
  return std::nullopt;
}

void run_dialog(const std::filesystem::path& path, bool bytewise) {
  SCOPED_TRACE(path.filename().string() + (bytewise ? " (byte by byte)" : " (whole)"));
  const std::vector<std::string> lines = read_lines(path);
  ASSERT_FALSE(lines.empty());
  SessionConfig config = config_from(lines);
  FakeHost host(config);
  host.fail_commit = fail_commit_from(lines);
  if (config.tls_mode == TlsMode::kImplicit) {
    host.session.tls_established(TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384", "mx.example"});
  }
  host.start();

  std::size_t next_reply = 0;
  std::optional<ReplyLines> last_reply;
  std::vector<ReplyLines> replies;
  int number = 0;
  for (const std::string& line : lines) {
    ++number;
    SCOPED_TRACE("line " + std::to_string(number) + ": " + line);
    if (line.empty() || line.starts_with("#") || line.starts_with("@ ")) continue;
    replies = split_replies(host.output);
    if (line.starts_with("C: ") || line == "C:") {
      host.send(line.size() > 3 ? line.substr(3) + "\r\n" : std::string("\r\n"), bytewise);
    } else if (line.starts_with("C+ ")) {
      host.send(unescape(line.substr(3)), bytewise);
    } else if (line.starts_with("C! ")) {
      host.send(unescape(line.substr(3)), false);
    } else if (line.starts_with("S: ")) {
      ASSERT_LT(next_reply, replies.size()) << "no reply left; output:\n" << host.output;
      last_reply = replies[next_reply++];
      EXPECT_TRUE(last_reply->lines.back().starts_with(line.substr(3)))
          << "got: " << last_reply->lines.back();
    } else if (line.starts_with("S~ ") || line.starts_with("S! ")) {
      ASSERT_TRUE(last_reply.has_value());
      bool found = std::any_of(last_reply->lines.begin(), last_reply->lines.end(),
                               [&](const std::string& reply_line) {
                                 return reply_line.find(line.substr(3)) != std::string::npos;
                               });
      EXPECT_EQ(found, line[1] == '~');
    } else if (line.starts_with("M:")) {
      ASSERT_FALSE(host.messages.empty());
      std::string expected = line.size() > 3 ? unescape(line.substr(3)) : std::string();
      EXPECT_EQ(host.messages.back(), expected);
    } else if (line.starts_with("ABORTS ")) {
      EXPECT_EQ(host.aborts, std::stoi(line.substr(7)));
    } else if (line == "EOF") {
      host.eof();
    } else if (line == "TIMEOUT") {
      host.session.timeout();
      host.run();
    } else if (line == "SHUTDOWN") {
      host.session.shutdown();
      host.run();
    } else if (line == "CLOSED") {
      EXPECT_TRUE(host.closed);
      EXPECT_EQ(host.session.next(), Action::kClose);
    } else if (line == "HTTP") {
      EXPECT_TRUE(host.session.closed_as_http());
    } else if (line.starts_with("AUTH-GOT ")) {
      ASSERT_TRUE(host.auth_waiting) << "the session is not waiting for an AUTH answer";
      const AuthRequest& request = host.auth_requests.back();
      std::string expected = line.substr(9);
      std::size_t space = expected.find(' ');
      EXPECT_EQ(request.mechanism, expected.substr(0, space));
      if (space == std::string::npos) {
        EXPECT_FALSE(request.has_response);
      } else {
        std::string response = expected.substr(space + 1);
        EXPECT_TRUE(request.has_response);
        EXPECT_EQ(request.response, response == "=" ? std::string() : unescape(response));
      }
    } else if (line == "AUTH-CHALLENGE" || line.starts_with("AUTH-CHALLENGE ")) {
      ASSERT_TRUE(host.auth_waiting) << "the session is not waiting for an AUTH answer";
      host.answer_and_run(AuthAnswer::challenge(line.size() > 15 ? unescape(line.substr(15)) : ""));
    } else if (line.starts_with("AUTH-OK ")) {
      ASSERT_TRUE(host.auth_waiting) << "the session is not waiting for an AUTH answer";
      host.answer_and_run(AuthAnswer::success(line.substr(8)));
    } else if (line.starts_with("AUTH-FAIL ")) {
      ASSERT_TRUE(host.auth_waiting) << "the session is not waiting for an AUTH answer";
      std::istringstream words(line.substr(10));
      Reply reply;
      words >> reply.code >> reply.enhanced;
      std::getline(words >> std::ws, reply.text);
      host.answer_and_run(AuthAnswer::failure(reply));
    } else if (line == "AUTH-IDLE") {
      EXPECT_FALSE(host.auth_waiting) << "the session waits for an AUTH answer";
    } else {
      ADD_FAILURE() << "unknown directive";
    }
  }
  replies = split_replies(host.output);
  EXPECT_EQ(next_reply, replies.size()) << "replies not checked by the dialog:\n" << host.output;
}

std::vector<std::filesystem::path> dialog_files() {
  std::vector<std::filesystem::path> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(SMTPSD_DIALOG_DIR, error)) {
    if (entry.path().extension() == ".dialog") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class DialogTest : public ::testing::TestWithParam<std::filesystem::path> {};

TEST_P(DialogTest, Whole) {
  run_dialog(GetParam(), false);
}
TEST_P(DialogTest, ByteByByte) {
  run_dialog(GetParam(), true);
}

std::string dialog_name(const ::testing::TestParamInfo<std::filesystem::path>& info) {
  std::string name = info.param.stem().string();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Dialogs, DialogTest, ::testing::ValuesIn(dialog_files()), dialog_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(DialogTest);

TEST(DialogFilesTest, DirectoryHasDialogs) {
  EXPECT_GE(dialog_files().size(), 15u);
}

}  // namespace
}  // namespace smtp
