// results.cpp — the RFC 8601 §2.7 names of the results.
#include "mailauth/results.h"

namespace mailauth {

std::string_view to_string(SpfResult result) {
  switch (result) {
    case SpfResult::kNone:
      return "none";
    case SpfResult::kNeutral:
      return "neutral";
    case SpfResult::kPass:
      return "pass";
    case SpfResult::kFail:
      return "fail";
    case SpfResult::kSoftFail:
      return "softfail";
    case SpfResult::kTempError:
      return "temperror";
    case SpfResult::kPermError:
      return "permerror";
  }
  return "?";
}

std::string_view to_string(DkimResult result) {
  switch (result) {
    case DkimResult::kNone:
      return "none";
    case DkimResult::kPass:
      return "pass";
    case DkimResult::kFail:
      return "fail";
    case DkimResult::kPolicy:
      return "policy";
    case DkimResult::kNeutral:
      return "neutral";
    case DkimResult::kTempError:
      return "temperror";
    case DkimResult::kPermError:
      return "permerror";
  }
  return "?";
}

std::string_view to_string(DmarcResult result) {
  switch (result) {
    case DmarcResult::kNone:
      return "none";
    case DmarcResult::kPass:
      return "pass";
    case DmarcResult::kFail:
      return "fail";
    case DmarcResult::kTempError:
      return "temperror";
    case DmarcResult::kPermError:
      return "permerror";
  }
  return "?";
}

std::string_view to_string(DmarcPolicy policy) {
  switch (policy) {
    case DmarcPolicy::kNone:
      return "none";
    case DmarcPolicy::kQuarantine:
      return "quarantine";
    case DmarcPolicy::kReject:
      return "reject";
  }
  return "?";
}

std::string_view to_string(ArcResult result) {
  switch (result) {
    case ArcResult::kNone:
      return "none";
    case ArcResult::kPass:
      return "pass";
    case ArcResult::kFail:
      return "fail";
  }
  return "?";
}

}  // namespace mailauth
