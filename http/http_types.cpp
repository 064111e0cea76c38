#include "http/http_types.h"

namespace semid::http {

Response json_response(const Request& request, HttpStatus status, const nlohmann::json& body) {
  // Replace invalid UTF-8 rather than throwing: payloads come from users.
  return json_text_response(request, status,
                            body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Response json_text_response(const Request& request, HttpStatus status, std::string body) {
  Response response{status, request.version()};
  response.set(beast_http::field::server, "semid");
  response.set(beast_http::field::content_type, "application/json");
  response.keep_alive(request.keep_alive());
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

Response error_response(const Request& request, HttpStatus status, const std::string& code,
                        const std::string& message) {
  return json_response(request, status, {{"error", {{"code", code}, {"message", message}}}});
}

HttpStatus http_status_of(Status::Code code) {
  switch (code) {
    case Status::Code::kOk:
      return HttpStatus::ok;
    case Status::Code::kInvalidArgument:
      return HttpStatus::unprocessable_entity;
    case Status::Code::kNotFound:
      return HttpStatus::not_found;
    case Status::Code::kAlreadyExists:
    case Status::Code::kFailedPrecondition:
      return HttpStatus::conflict;
    case Status::Code::kBusy:
      return HttpStatus::service_unavailable;
    case Status::Code::kCorruption:
    case Status::Code::kIOError:
    case Status::Code::kInternal:
      return HttpStatus::internal_server_error;
  }
  return HttpStatus::internal_server_error;
}

std::string error_code_of(Status::Code code) {
  switch (code) {
    case Status::Code::kOk:
      return "ok";
    case Status::Code::kInvalidArgument:
      return "invalid_value";
    case Status::Code::kNotFound:
      return "not_found";
    case Status::Code::kAlreadyExists:
      return "already_exists";
    case Status::Code::kFailedPrecondition:
      return "failed_precondition";
    case Status::Code::kBusy:
      return "busy";
    case Status::Code::kCorruption:
      return "corruption";
    case Status::Code::kIOError:
      return "io_error";
    case Status::Code::kInternal:
      return "internal";
  }
  return "internal";
}

}  // namespace semid::http
