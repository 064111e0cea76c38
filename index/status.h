// Status and Result<T>: the error channel of index/ and storage/ (STYLE.md, rule 5).
//
// Every fallible call in these modules returns a Status, or a Result<T> that holds either a value
// or a non-OK Status. Messages name the field (or file) and the offending value, so that a user
// who reads only the message knows what to fix.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace semid {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,
    kNotFound,
    kCorruption,
    kIOError,
    kBusy,
    kAlreadyExists,
    kFailedPrecondition,
    kInternal
  };

  Status() = default;  // OK

  static Status ok() { return {}; }
  static Status invalid_argument(std::string msg) {
    return {Code::kInvalidArgument, std::move(msg)};
  }
  static Status not_found(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status io_error(std::string msg) { return {Code::kIOError, std::move(msg)}; }
  static Status busy(std::string msg) { return {Code::kBusy, std::move(msg)}; }
  static Status already_exists(std::string msg) { return {Code::kAlreadyExists, std::move(msg)}; }
  static Status failed_precondition(std::string msg) {
    return {Code::kFailedPrecondition, std::move(msg)};
  }
  static Status internal(std::string msg) { return {Code::kInternal, std::move(msg)}; }

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "InvalidArgument: <message>", or "OK".
  std::string to_string() const;
  static const char* code_name(Code code);

  // Returns a copy whose message is "<context>: <message>" (same code).
  Status with_context(const std::string& context) const {
    if (is_ok()) return *this;
    return {code_, context + ": " + message_};
  }

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Either a T or a non-OK Status. Accessing value() of an error is a programming error (asserts).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : state_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(state_).is_ok() && "Result built from an OK Status");
  }

  bool is_ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return is_ok(); }

  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(state_);
  }
  T& value() & {
    assert(is_ok());
    return std::get<T>(state_);
  }
  const T& value() const& {
    assert(is_ok());
    return std::get<T>(state_);
  }
  T&& value() && {
    assert(is_ok());
    return std::get<T>(std::move(state_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> state_;
};

// `text` made safe for a terminal or a log line: bytes that are not valid UTF-8, and control
// characters other than tab, become \xNN (a corrupted file's header must not reach the terminal
// raw).
std::string printable(std::string_view text);

}  // namespace semid

// Early return of a non-OK Status from an expression returning Status.
#define SEMID_RETURN_IF_ERROR(expr)                   \
  do {                                                \
    ::semid::Status semid_status_ = (expr);           \
    if (!semid_status_.is_ok()) return semid_status_; \
  } while (0)

#define SEMID_CONCAT_INNER_(a, b) a##b
#define SEMID_CONCAT_(a, b) SEMID_CONCAT_INNER_(a, b)
// `SEMID_ASSIGN_OR_RETURN(auto x, f());` — x is the value, or the Status is returned.
#define SEMID_ASSIGN_OR_RETURN(lhs, expr) \
  SEMID_ASSIGN_OR_RETURN_IMPL_(SEMID_CONCAT_(semid_result_, __LINE__), lhs, expr)
#define SEMID_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.is_ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
