// verification_queue.cpp — see verification_queue.h.
#include "auth/verification_queue.h"

#include <utility>

namespace auth {

VerificationQueue::Ticket& VerificationQueue::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    if (queue_ != nullptr) queue_->in_use_.fetch_sub(1, std::memory_order_acq_rel);
    queue_ = std::exchange(other.queue_, nullptr);
  }
  return *this;
}

VerificationQueue::Ticket::~Ticket() {
  if (queue_ != nullptr) queue_->in_use_.fetch_sub(1, std::memory_order_acq_rel);
}

std::optional<VerificationQueue::Ticket> VerificationQueue::try_enter() {
  std::size_t current = in_use_.load(std::memory_order_relaxed);
  do {
    if (current >= capacity_) return std::nullopt;
  } while (!in_use_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
  return Ticket(this);
}

}  // namespace auth
