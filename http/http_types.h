// The HTTP vocabulary of semid's server: Beast requests/responses with string bodies, and the
// JSON conventions every endpoint follows.
//
// Success: {"result": ..., "time": seconds}. Error: {"error": {"code": "...", "message": "..."}}
// with a fitting 4xx/5xx status (as Qdrant, Milvus and Weaviate users expect).
#pragma once

#include <boost/beast/http.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "index/status.h"

namespace semid::http {

namespace beast_http = boost::beast::http;
using Request = beast_http::request<beast_http::string_body>;
using Response = beast_http::response<beast_http::string_body>;
using Verb = beast_http::verb;
using HttpStatus = beast_http::status;

// The pure request handler: no sockets, no threads of its own. Must not throw.
using Handler = std::function<Response(const Request&)>;

// A response with a JSON body and the request's HTTP version and keep-alive.
Response json_response(const Request& request, HttpStatus status, const nlohmann::json& body);
// The same headers around `body`, JSON its caller has already serialised (valid UTF-8).
Response json_text_response(const Request& request, HttpStatus status, std::string body);

// {"error": {"code": code, "message": message}} with `status`.
Response error_response(const Request& request, HttpStatus status, const std::string& code,
                        const std::string& message);

// The one mapping of a Status code to an HTTP status and a snake_case error code: InvalidArgument
// -> 422 "invalid_value" (the request parsed, a value in it is wrong), NotFound -> 404,
// AlreadyExists and FailedPrecondition -> 409, Busy -> 503, Corruption, IOError, Internal -> 500.
HttpStatus http_status_of(Status::Code code);
std::string error_code_of(Status::Code code);

}  // namespace semid::http
