// control_commands.cpp — see control_commands.h.
#include "app/control_commands.h"

#include <sstream>
#include <vector>

namespace app {

std::string handle_control_request(const std::string& request, auth::FailureLimiter& limiter,
                                   std::chrono::steady_clock::time_point now) {
  std::istringstream in(request);
  std::vector<std::string> words;
  for (std::string word; in >> word;)
    words.push_back(word);
  if (words.size() == 2 && words[0] == "auth" && words[1] == "lockouts") {
    std::string out;
    for (const auth::Lockout& lockout : limiter.lockouts(now)) {
      out += lockout.ip + " " + (lockout.user.empty() ? "-" : lockout.user) + " " +
             std::to_string(lockout.failures) + " " + std::to_string(lockout.remaining.count()) +
             "\n";
    }
    return out;
  }
  if (words.size() == 3 && words[0] == "auth" && words[1] == "unlock") {
    if (limiter.unlock(words[2])) return "unlocked " + words[2] + "\n";
    return "error: nothing to unlock for " + words[2] + "\n";
  }
  return "error: unknown request (auth lockouts | auth unlock IP_OR_USER)\n";
}

}  // namespace app
