// loop_check.cpp — see loop_check.h.
#include "intake/loop_check.h"

#include <utility>

#include "base/ascii.h"

namespace intake {

std::size_t count_received_fields(std::string_view header_section) {
  std::size_t count = 0;
  std::size_t line = 0;
  while (line < header_section.size()) {
    std::size_t end = header_section.find("\r\n", line);
    if (end == std::string_view::npos) end = header_section.size();
    if (end == line) break;  // the empty line: the body follows
    const char first = header_section[line];
    if (first != ' ' && first != '\t') {  // not a continuation line
      std::string_view field = header_section.substr(line, end - line);
      std::size_t colon = field.find(':');
      if (colon != std::string_view::npos) {
        std::string_view name = field.substr(0, colon);
        while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
          name.remove_suffix(1);
        if (base::equals_ignoring_case(name, "Received")) ++count;
      }
    }
    line = end + 2;
  }
  return count;
}

std::string ReceivedLoopCheck::summary() const {
  return "554 5.4.6 at " + std::to_string(max_fields_) + " Received fields";
}

void ReceivedLoopCheck::run(Stage, const Context& context, Done done) {
  // Our own Received field comes on top: at the limit there are already too many.
  const std::size_t count = count_received_fields(context.header_section);
  if (count >= max_fields_) {
    done(Verdict::refuse(smtp::Reply{
        554, "5.4.6", "Too many Received headers (" + std::to_string(count) + "): mail loop?"}));
    return;
  }
  done(Verdict::pass());
}

}  // namespace intake
