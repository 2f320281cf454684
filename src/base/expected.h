// expected.h — a small std::expected stand-in (GCC 12 ships C++20 without <expected>).
// Results that a peer or the environment can cause are values, never exceptions
// (STYLE.md habit 3). Only the subset we use: has_value, value, error, operator bool.
#pragma once

#include <cassert>
#include <utility>
#include <variant>

namespace base {

template <typename E>
struct Unexpected {
  E error;
};

template <typename E>
Unexpected<std::decay_t<E>> unexpected(E&& e) {
  return Unexpected<std::decay_t<E>>{std::forward<E>(e)};
}

template <typename T, typename E>
class Expected {
 public:
  Expected(T value) : storage_(std::in_place_index<0>, std::move(value)) {}
  template <typename G>
  Expected(Unexpected<G> e) : storage_(std::in_place_index<1>, E(std::move(e.error))) {}

  bool has_value() const { return storage_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & {
    assert(has_value());
    return std::get<0>(storage_);
  }
  const T& value() const& {
    assert(has_value());
    return std::get<0>(storage_);
  }
  T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(storage_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  const E& error() const {
    assert(!has_value());
    return std::get<1>(storage_);
  }

 private:
  std::variant<T, E> storage_;
};

// Expected<void, E>: success carries nothing.
struct Ok {};

}  // namespace base
