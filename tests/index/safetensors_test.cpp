#include "index/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <random>

#include "tests/test_util.h"

namespace semid::safetensors {
namespace {

std::span<const std::uint8_t> as_bytes(const std::string& bytes) {
  return {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()};
}

Result<Archive> parse(const std::string& bytes, const ParseLimits& limits = {}) {
  return Archive::parse(as_bytes(bytes), limits);
}

std::string length_prefix(std::uint64_t n) {
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return prefix;
}

// A file with `header` as its JSON and `data_bytes` bytes of data after it.
std::string file_with_header(const std::string& header, std::size_t data_bytes = 0) {
  return length_prefix(header.size()) + header + std::string(data_bytes, '\x5a');
}

// A header with one tensor `t` of the given fields (raw JSON text).
std::string one_tensor(const std::string& dtype, const std::string& shape,
                       const std::string& offsets) {
  return R"({"t":{"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" + offsets +
         "}}";
}

void expect_corruption(const std::string& bytes, std::initializer_list<const char*> fragments,
                       const ParseLimits& limits = {}) {
  auto archive = parse(bytes, limits);
  ASSERT_FALSE(archive.is_ok());
  EXPECT_EQ(archive.status().code(), Status::Code::kCorruption) << archive.status().to_string();
  for (const char* fragment : fragments) {
    EXPECT_NE(archive.status().message().find(fragment), std::string::npos)
        << "'" << fragment << "' not in: " << archive.status().message();
  }
}

template <typename T>
Tensor tensor_of(DType dtype, std::vector<std::int64_t> shape, std::vector<T> values) {
  Tensor tensor{dtype, std::move(shape), std::vector<std::uint8_t>(values.size() * sizeof(T))};
  if (!values.empty()) std::memcpy(tensor.data.data(), values.data(), tensor.data.size());
  return tensor;
}

std::map<std::string, Tensor> sample_tensors() {
  std::map<std::string, Tensor> tensors;
  tensors["encoder.weight"] = Tensor::from_floats({2, 3}, std::vector<float>{1, 2, 3, 4, 5, -6.5f});
  tensors["codes"] = Tensor::from_int64s({3}, std::vector<std::int64_t>{7, -1, 1LL << 40});
  tensors["counts"] = Tensor::from_int32s({1, 2}, std::vector<std::int32_t>{-3, 9});
  tensors["f64"] = tensor_of<double>(DType::kF64, {2}, {0.25, -1e300});
  tensors["bytes"] = tensor_of<std::uint8_t>(DType::kU8, {5}, {1, 2, 3, 4, 255});
  tensors["signed_bytes"] = tensor_of<std::int8_t>(DType::kI8, {2}, {-128, 127});
  tensors["halves"] = tensor_of<std::uint16_t>(DType::kBF16, {2, 1}, {0x3f80, 0xc000});
  tensors["mask"] = tensor_of<std::uint8_t>(DType::kBool, {3}, {1, 0, 1});
  tensors["scale"] = Tensor::from_floats({}, std::vector<float>{0.5f});  // scalar
  tensors["empty"] = Tensor::from_int32s({0, 4}, {});                    // no elements
  return tensors;
}

void expect_same_tensors(const Archive& archive, const std::map<std::string, Tensor>& tensors) {
  ASSERT_EQ(archive.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    SCOPED_TRACE(name);
    auto view = archive.tensor(name);
    ASSERT_TRUE(view.is_ok()) << view.status().to_string();
    EXPECT_EQ(view->dtype, tensor.dtype);
    EXPECT_EQ(view->shape, tensor.shape);
    EXPECT_EQ(std::vector<std::uint8_t>(view->data.begin(), view->data.end()), tensor.data);
  }
}

// ---------------------------------------------------------------------------------------------
// DTypes.

TEST(SafetensorsDType, NamesAndSizesRoundTrip) {
  const std::vector<std::pair<DType, std::size_t>> expected = {
      {DType::kF32, 4}, {DType::kF64, 8},  {DType::kI32, 4}, {DType::kI64, 8},
      {DType::kU8, 1},  {DType::kI8, 1},   {DType::kI16, 2}, {DType::kU16, 2},
      {DType::kF16, 2}, {DType::kBF16, 2}, {DType::kBool, 1}};
  for (const auto& [dtype, size] : expected) {
    EXPECT_EQ(dtype_size(dtype), size) << dtype_name(dtype);
    auto parsed = parse_dtype(dtype_name(dtype));
    ASSERT_TRUE(parsed.is_ok());
    EXPECT_EQ(*parsed, dtype);
  }
  EXPECT_STREQ(dtype_name(DType::kBool), "BOOL");
}

TEST(SafetensorsDType, UnknownNameIsInvalidArgumentListingSupported) {
  auto parsed = parse_dtype("f32");
  ASSERT_FALSE(parsed.is_ok());
  EXPECT_EQ(parsed.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("'f32'"), std::string::npos);
  EXPECT_NE(parsed.status().message().find("BF16"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Round trips and the writer's layout.

TEST(Safetensors, RoundTripSeveralDtypesShapesScalarAndEmpty) {
  const auto tensors = sample_tensors();
  auto bytes = serialize(tensors, {});
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  auto archive = parse(*bytes);
  ASSERT_TRUE(archive.is_ok()) << archive.status().to_string();
  expect_same_tensors(*archive, tensors);
  EXPECT_TRUE(archive->metadata().empty());

  EXPECT_EQ(archive->tensor("scale")->numel(), 1);
  EXPECT_TRUE(archive->tensor("scale")->shape.empty());
  EXPECT_EQ(archive->tensor("empty")->numel(), 0);
  EXPECT_TRUE(archive->tensor("empty")->data.empty());
  EXPECT_EQ(*archive->floats("encoder.weight"), (std::vector<float>{1, 2, 3, 4, 5, -6.5f}));
  EXPECT_EQ(*archive->floats("scale"), std::vector<float>{0.5f});
  EXPECT_EQ(archive->names(),
            (std::vector<std::string>{"bytes", "codes", "counts", "empty", "encoder.weight", "f64",
                                      "halves", "mask", "scale", "signed_bytes"}));
  EXPECT_TRUE(archive->contains("mask"));
  EXPECT_FALSE(archive->contains("__metadata__"));
}

TEST(Safetensors, WriteThenOpenRoundTripsTensorsAndMetadata) {
  testing::TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const auto tensors = sample_tensors();
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"config", R"({"levels": 3, "name": "caf\u00e9"})"}, {"empty", ""}};
  ASSERT_TRUE(write(path, tensors, metadata).is_ok());
  auto file = File::open(path);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  EXPECT_EQ(file->path(), path);
  expect_same_tensors(file->archive(), tensors);
  EXPECT_EQ(file->archive().metadata(), metadata);
  // The streamed file and the in-memory serialization are the same bytes.
  EXPECT_EQ(*read_file(path), *serialize(tensors, metadata));
}

TEST(Safetensors, FileStaysValidAfterMove) {
  testing::TempDir dir;
  const std::string path = dir.file("m.safetensors");
  ASSERT_TRUE(write(path, sample_tensors()).is_ok());
  auto opened = File::open(path);
  ASSERT_TRUE(opened.is_ok());
  File moved = std::move(opened).value();
  EXPECT_EQ(*moved.archive().floats("scale"), std::vector<float>{0.5f});
}

TEST(Safetensors, HeaderIsSpacePaddedToMultipleOf8AndDataIsAligned) {
  for (std::size_t name_length = 1; name_length <= 9; ++name_length) {
    SCOPED_TRACE(name_length);
    std::map<std::string, Tensor> tensors;
    tensors[std::string(name_length, 'n')] = tensor_of<std::uint8_t>(DType::kU8, {3}, {1, 2, 3});
    tensors["d"] = tensor_of<double>(DType::kF64, {1}, {1.0});
    tensors["f"] = Tensor::from_floats({3}, std::vector<float>{1, 2, 3});
    tensors["h"] = tensor_of<std::uint16_t>(DType::kF16, {1}, {0x3c00});
    const std::string bytes = *serialize(tensors, {{"k", std::string(name_length, 'v')}});
    std::uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    EXPECT_EQ(n % 8, 0u);
    const std::string header = bytes.substr(8, n);
    const std::size_t json_end = header.find_last_of('}') + 1;
    EXPECT_GT(json_end + 8, header.size());
    EXPECT_EQ(header.substr(json_end), std::string(header.size() - json_end, ' '));
    auto archive = parse(bytes);
    ASSERT_TRUE(archive.is_ok());
    for (const auto& name : archive->names()) {
      const TensorView view = *archive->tensor(name);
      const auto file_offset = static_cast<std::size_t>(view.data.data() - as_bytes(bytes).data());
      EXPECT_EQ(file_offset % dtype_size(view.dtype), 0u) << name;
    }
  }
}

// Expected bytes from the Python package's own test suite (bindings/python/tests/test_simple.py,
// test_serialization): save({"test": np.zeros((2, 2), dtype=np.int32)}).
TEST(Safetensors, ByteExactWithPythonPackageForInt32Zeros) {
  const std::string expected = length_prefix(64) +
                               R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})" +
                               "    " + std::string(16, '\0');
  std::map<std::string, Tensor> tensors;
  tensors["test"] = Tensor::from_int32s({2, 2}, std::vector<std::int32_t>(4, 0));
  EXPECT_EQ(*serialize(tensors, {}), expected);
}

// From the Rust crate's tests (safetensors/src/tensor.rs, test_serialization and test_empty).
TEST(Safetensors, ByteExactWithPythonPackageForFloatsAndMetadataOnly) {
  std::string floats_expected =
      length_prefix(64) + R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  for (float value : {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f}) {
    floats_expected.append(reinterpret_cast<const char*>(&value), sizeof(value));
  }
  std::map<std::string, Tensor> tensors;
  tensors["attn.0"] = Tensor::from_floats({1, 2, 3}, std::vector<float>{0, 1, 2, 3, 4, 5});
  EXPECT_EQ(*serialize(tensors, {}), floats_expected);

  EXPECT_EQ(*serialize({}, {}), length_prefix(8) + "{}      ");
  EXPECT_EQ(*serialize({}, {{"framework", "pt"}}),
            length_prefix(40) + R"({"__metadata__":{"framework":"pt"}})" + "     ");
}

// The Python package lays tensors out by descending dtype alignment rank, then by name.
TEST(Safetensors, LayoutOrderMatchesPythonPackage) {
  std::map<std::string, Tensor> tensors;
  tensors["a_u8"] = tensor_of<std::uint8_t>(DType::kU8, {1}, {1});
  tensors["b_f32"] = Tensor::from_floats({1}, std::vector<float>{1});
  tensors["c_i64"] = Tensor::from_int64s({1}, std::vector<std::int64_t>{1});
  tensors["d_f64"] = tensor_of<double>(DType::kF64, {1}, {1});
  tensors["e_f32"] = Tensor::from_floats({1}, std::vector<float>{2});
  const std::string bytes = *serialize(tensors, {});
  const std::string expected_json = R"({"c_i64":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
                                    R"("d_f64":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},)"
                                    R"("b_f32":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},)"
                                    R"("e_f32":{"dtype":"F32","shape":[1],"data_offsets":[20,24]},)"
                                    R"("a_u8":{"dtype":"U8","shape":[1],"data_offsets":[24,25]}})";
  EXPECT_EQ(bytes.substr(8, expected_json.size()), expected_json);
}

TEST(Safetensors, ReadsHeadersInAnyKeyOrderWithUnknownFieldsAndSharedEmptyOffsets) {
  const std::string header =
      R"({"b":{"data_offsets":[0,0],"shape":[0],"dtype":"F32"},)"
      R"("a":{"shape":[],"extra":{"x":[1]},"dtype":"I16","data_offsets":[0,2]},)"
      R"("c":{"dtype":"BOOL","shape":[2,0],"data_offsets":[2,2]},)"
      R"("__metadata__":{"k":"v"}})";
  auto archive = parse(file_with_header(header, 2));
  ASSERT_TRUE(archive.is_ok()) << archive.status().to_string();
  EXPECT_EQ(archive->size(), 3u);
  EXPECT_EQ(archive->metadata().at("k"), "v");
  EXPECT_EQ(archive->tensor("a")->dtype, DType::kI16);
  EXPECT_EQ(archive->tensor("c")->numel(), 0);
}

TEST(Safetensors, EmptyArchiveParses) {
  auto archive = parse(file_with_header("{}"));
  ASSERT_TRUE(archive.is_ok());
  EXPECT_EQ(archive->size(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Lookups.

TEST(Safetensors, MissingTensorIsNotFound) {
  const std::string bytes = *serialize(sample_tensors(), {});
  auto archive = parse(bytes);
  auto view = archive->tensor("decoder.weight");
  ASSERT_FALSE(view.is_ok());
  EXPECT_EQ(view.status().code(), Status::Code::kNotFound);
  EXPECT_NE(view.status().message().find("'decoder.weight'"), std::string::npos);
  EXPECT_EQ(archive->floats("nope").status().code(), Status::Code::kNotFound);
}

TEST(Safetensors, TypedLookupNamesExpectedAndGot) {
  const std::string bytes = *serialize(sample_tensors(), {});
  auto archive = parse(bytes);
  EXPECT_TRUE(archive->tensor("encoder.weight", DType::kF32, {2, 3}).is_ok());
  auto wrong_shape = archive->tensor("encoder.weight", DType::kF32, {3, 2});
  ASSERT_FALSE(wrong_shape.is_ok());
  EXPECT_EQ(wrong_shape.status().code(), Status::Code::kCorruption);
  EXPECT_EQ(wrong_shape.status().message(),
            "tensor 'encoder.weight': expected F32 [3, 2], got F32 [2, 3]");
  auto wrong_dtype = archive->tensor("codes", DType::kI32, {3});
  ASSERT_FALSE(wrong_dtype.is_ok());
  EXPECT_EQ(wrong_dtype.status().message(), "tensor 'codes': expected I32 [3], got I64 [3]");
}

TEST(Safetensors, FloatsOfNonF32IsInvalidArgument) {
  const std::string bytes = *serialize(sample_tensors(), {});
  auto floats = parse(bytes)->floats("codes");
  ASSERT_FALSE(floats.is_ok());
  EXPECT_EQ(floats.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(floats.status().message().find("I64"), std::string::npos);
}

TEST(Safetensors, OpenErrorsNameThePath) {
  testing::TempDir dir;
  EXPECT_EQ(File::open(dir.file("missing")).status().code(), Status::Code::kNotFound);
  const std::string path = dir.file("bad.safetensors");
  ASSERT_TRUE(write_file_atomically(path, "short").is_ok());
  auto file = File::open(path);
  ASSERT_FALSE(file.is_ok());
  EXPECT_EQ(file.status().code(), Status::Code::kCorruption);
  EXPECT_NE(file.status().message().find(path), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Writer misuse.

Status serialize_status(const std::map<std::string, Tensor>& tensors,
                        const std::map<std::string, std::string>& metadata = {}) {
  return serialize(tensors, metadata).status();
}

TEST(SafetensorsWrite, DataSizeNotMatchingShapeIsInvalidArgument) {
  std::map<std::string, Tensor> tensors;
  tensors["w"] = Tensor::from_floats({2, 2}, std::vector<float>{1, 2, 3});
  Status status = serialize_status(tensors);
  EXPECT_EQ(status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(status.message(), "tensor 'w': F32 [2, 2] needs 16 bytes, data holds 12");
}

TEST(SafetensorsWrite, NegativeDimensionIsInvalidArgument) {
  std::map<std::string, Tensor> tensors;
  tensors["w"] = Tensor::from_floats({-1}, {});
  Status status = serialize_status(tensors);
  EXPECT_EQ(status.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(status.message().find("[-1]"), std::string::npos);
}

TEST(SafetensorsWrite, ReservedNameAndInvalidUtf8AreInvalidArgument) {
  std::map<std::string, Tensor> reserved;
  reserved["__metadata__"] = Tensor::from_floats({}, std::vector<float>{1});
  EXPECT_EQ(serialize_status(reserved).code(), Status::Code::kInvalidArgument);

  std::map<std::string, Tensor> bad_name;
  bad_name["w\xff"] = Tensor::from_floats({}, std::vector<float>{1});
  EXPECT_EQ(serialize_status(bad_name).code(), Status::Code::kInvalidArgument);
  Status bad_value = serialize_status({}, {{"k", "\xc3"}});
  EXPECT_EQ(bad_value.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(bad_value.message().find("'k'"), std::string::npos);
}

TEST(SafetensorsWrite, FailedWriteLeavesNoFile) {
  testing::TempDir dir;
  std::map<std::string, Tensor> invalid;
  invalid["w"] = Tensor::from_floats({2}, std::vector<float>{1});
  const std::string path = dir.file("m.safetensors");
  EXPECT_EQ(write(path, invalid).code(), Status::Code::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(write("/nonexistent/semid/m.safetensors", sample_tensors()).code(),
            Status::Code::kIOError);
}

// ---------------------------------------------------------------------------------------------
// Hostile bytes: one test per defect.

TEST(SafetensorsMalformed, ShorterThanLengthPrefix) {
  expect_corruption(std::string("\x08\0\0", 3), {"3 bytes", "8-byte"});
  expect_corruption("", {"0 bytes"});
}

TEST(SafetensorsMalformed, HeaderLengthOverLimit) {
  const std::string bytes = file_with_header("{}      ");
  ParseLimits limits;
  limits.max_header_bytes = 4;
  expect_corruption(bytes, {"header length 8", "limit 4"}, limits);
  expect_corruption(length_prefix(~0ULL) + "{}", {"18446744073709551615", "limit 100000000"});
}

TEST(SafetensorsMalformed, HeaderLengthPastEndOfFile) {
  expect_corruption(length_prefix(100) + "{}", {"header length 100", "10 bytes"});
}

TEST(SafetensorsMalformed, InvalidJson) {
  expect_corruption(file_with_header(R"({"t":{"dtype":"F32",)"), {"not valid JSON"});
  expect_corruption(file_with_header("{\"t\xff\":{}}"), {"not valid JSON"});  // bad UTF-8
  expect_corruption(file_with_header(""), {"not valid JSON"});
}

TEST(SafetensorsMalformed, HeaderNotAnObject) {
  expect_corruption(file_with_header("[1, 2]  "), {"JSON object", "array"});
  expect_corruption(file_with_header("\"{}\""), {"JSON object", "string"});
}

TEST(SafetensorsMalformed, NulByteInHeader) {
  // nlohmann::json would stop at the NUL and accept the prefix.
  expect_corruption(file_with_header(std::string("{}\0garbage", 10)), {"NUL", "offset 2"});
}

TEST(SafetensorsMalformed, TensorEntryNotAnObjectOrMissingField) {
  expect_corruption(file_with_header(R"({"t":[1]})"), {"tensor 't'", "must be an object"});
  expect_corruption(file_with_header(R"({"t":{"dtype":"F32","shape":[]}})"),
                    {"tensor 't'", "data_offsets"});
}

TEST(SafetensorsMalformed, UnknownDtype) {
  expect_corruption(file_with_header(one_tensor("\"U32\"", "[1]", "[0,4]"), 4),
                    {"tensor 't'", "unknown dtype 'U32'"});
  expect_corruption(file_with_header(one_tensor("4", "[1]", "[0,4]"), 4),
                    {"tensor 't'", "dtype must be a string"});
}

TEST(SafetensorsMalformed, NegativeOrNonIntegerDimension) {
  expect_corruption(file_with_header(one_tensor("\"F32\"", "[2,-1]", "[0,4]"), 4),
                    {"tensor 't'", "shape[1]", "-1"});
  expect_corruption(file_with_header(one_tensor("\"F32\"", "[2.5]", "[0,4]"), 4),
                    {"tensor 't'", "shape[0]", "2.5"});
  expect_corruption(file_with_header(one_tensor("\"F32\"", "3", "[0,4]"), 4),
                    {"tensor 't'", "shape must be an array"});
}

TEST(SafetensorsMalformed, NumelOverflow) {
  expect_corruption(file_with_header(one_tensor("\"F32\"", "[4294967296,4294967296]", "[0,4]"), 4),
                    {"tensor 't'", "[4294967296, 4294967296]", "overflows"});
  // Fits in int64 elements, not in int64 bytes.
  expect_corruption(file_with_header(one_tensor("\"F64\"", "[4611686018427387904]", "[0,4]"), 4),
                    {"tensor 't'", "overflows"});
  expect_corruption(file_with_header(one_tensor("\"U8\"", "[18446744073709551615]", "[0,4]"), 4),
                    {"tensor 't'", "shape[0]"});
}

TEST(SafetensorsMalformed, DataOffsetsNotTwoNonNegativeIntegers) {
  expect_corruption(file_with_header(one_tensor("\"U8\"", "[4]", "[0]"), 4),
                    {"tensor 't'", "data_offsets must be [begin, end]"});
  expect_corruption(file_with_header(one_tensor("\"U8\"", "[4]", "[0,4,8]"), 4),
                    {"tensor 't'", "data_offsets must be [begin, end]"});
  expect_corruption(file_with_header(one_tensor("\"U8\"", "[4]", "{\"a\":1}"), 4),
                    {"tensor 't'", "data_offsets must be [begin, end]"});
  expect_corruption(file_with_header(one_tensor("\"U8\"", "[4]", "[\"0\",4]"), 4),
                    {"tensor 't'", "data_offsets begin", "\"0\""});
  expect_corruption(file_with_header(one_tensor("\"U8\"", "[4]", "[-4,0]"), 4),
                    {"tensor 't'", "data_offsets begin", "-4"});
  expect_corruption(file_with_header(one_tensor("\"U8\"", "[4]", "[0,4.0]"), 4),
                    {"tensor 't'", "data_offsets end"});
}

TEST(SafetensorsMalformed, DataOffsetsDescending) {
  expect_corruption(file_with_header(one_tensor("\"U8\"", "[4]", "[4,0]"), 4),
                    {"tensor 't'", "[4, 0]", "not ascending"});
}

TEST(SafetensorsMalformed, DataOffsetsEndPastBuffer) {
  expect_corruption(file_with_header(one_tensor("\"U8\"", "[8]", "[0,8]"), 4),
                    {"tensor 't'", "data_offsets end", "4 bytes", "got 8"});
  expect_corruption(file_with_header(one_tensor("\"U8\"", "[0]", "[9,9]"), 4),
                    {"tensor 't'", "data_offsets begin", "got 9"});
}

TEST(SafetensorsMalformed, DataOffsetsSpanNotMatchingShape) {
  expect_corruption(file_with_header(one_tensor("\"F32\"", "[2,2]", "[0,12]"), 12),
                    {"tensor 't'", "[0, 12]", "span 12 bytes", "F32 [2, 2] needs 16"});
}

TEST(SafetensorsMalformed, OverlappingTensors) {
  const std::string header = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})";
  expect_corruption(file_with_header(header, 6), {"tensor 'b'", "[2, 6]", "overlaps", "'a'", "4"});
}

TEST(SafetensorsMalformed, HoleBetweenTensors) {
  const std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                             R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})";
  expect_corruption(file_with_header(header, 6), {"[2, 4)", "no tensor", "'b'"});
  expect_corruption(file_with_header(one_tensor("\"U8\"", "[2]", "[2,4]"), 4), {"[0, 2)", "'t'"});
}

TEST(SafetensorsMalformed, TrailingBytesAfterLastTensor) {
  expect_corruption(file_with_header(one_tensor("\"U8\"", "[2]", "[0,2]"), 5),
                    {"[2, 5)", "after the last tensor"});
  expect_corruption(file_with_header("{}", 1), {"[0, 1)"});
}

TEST(SafetensorsMalformed, DuplicateTensorNames) {
  const std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                             R"("a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})";
  expect_corruption(file_with_header(header, 4), {"duplicate key 'a'"});
  expect_corruption(
      file_with_header(R"({"t":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}})", 1),
      {"duplicate key 'dtype'"});
}

TEST(SafetensorsMalformed, MetadataNotAnObjectOfStrings) {
  expect_corruption(file_with_header(R"({"__metadata__":{"epochs":3}})"),
                    {"__metadata__['epochs']", "must be a string", "3"});
  expect_corruption(file_with_header(R"({"__metadata__":["a"]})"), {"__metadata__ must be"});
}

TEST(SafetensorsMalformed, MoreTensorsThanLimit) {
  const std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                             R"("b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},)"
                             R"("__metadata__":{}})";
  ParseLimits limits;
  limits.max_tensors = 2;
  EXPECT_TRUE(parse(file_with_header(header, 2), limits).is_ok());
  limits.max_tensors = 1;
  expect_corruption(file_with_header(header, 2), {"2 tensors", "limit 1"}, limits);
}

TEST(SafetensorsMalformed, AbsurdNesting) {
  std::string header =
      R"({"__metadata__":)" + std::string(1000, '[') + std::string(1000, ']') + "}";
  expect_corruption(file_with_header(header), {"nests deeper"});
}

TEST(SafetensorsMalformed, HugeNamesAreQuotedShort) {
  const std::string name(10000, 'x');
  auto archive = parse(file_with_header("{\"" + name + "\":1}"));
  ASSERT_FALSE(archive.is_ok());
  EXPECT_LT(archive.status().message().size(), 400u);
  EXPECT_NE(archive.status().message().find("10000 chars"), std::string::npos);
}

TEST(SafetensorsMalformed, TruncationAtEveryOffsetIsAnError) {
  std::map<std::string, Tensor> tensors;
  tensors["w"] = Tensor::from_floats({2}, std::vector<float>{1, 2});
  tensors["c"] = Tensor::from_int64s({1}, std::vector<std::int64_t>{3});
  const std::string bytes = *serialize(tensors, {{"k", "v"}});
  ASSERT_TRUE(parse(bytes).is_ok());
  for (std::size_t length = 0; length < bytes.size(); ++length) {
    auto archive = parse(bytes.substr(0, length));
    ASSERT_FALSE(archive.is_ok()) << "prefix of " << length << " bytes parsed";
    EXPECT_EQ(archive.status().code(), Status::Code::kCorruption);
  }
}

// A parse that succeeds on flipped bytes must still describe memory inside the buffer correctly.
TEST(SafetensorsMalformed, RandomHeaderByteFlipsErrorOrParseConsistently) {
  std::map<std::string, Tensor> tensors;
  tensors["w"] = Tensor::from_floats({2, 2}, std::vector<float>{1, 2, 3, 4});
  tensors["c"] = Tensor::from_int64s({1}, std::vector<std::int64_t>{3});
  tensors["e"] = Tensor::from_int32s({0}, {});
  const std::string original = *serialize(tensors, {{"k", "v"}});
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, original.data(), 8);
  const std::size_t header_end = 8 + static_cast<std::size_t>(header_length);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<std::size_t> position(0, header_end - 1);
  std::uniform_int_distribution<int> flips(1, 3), byte(0, 255), bit(0, 7);
  int parsed = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    std::string bytes = original;
    for (int f = flips(rng); f > 0; --f) {
      const std::size_t at = position(rng);
      if (trial % 2 == 0) {
        bytes[at] = static_cast<char>(bytes[at] ^ (1 << bit(rng)));
      } else {
        bytes[at] = static_cast<char>(byte(rng));
      }
    }
    auto archive = parse(bytes);
    if (!archive.is_ok()) {
      EXPECT_EQ(archive.status().code(), Status::Code::kCorruption);
      continue;
    }
    ++parsed;
    const auto whole = as_bytes(bytes);
    for (const auto& name : archive->names()) {
      const TensorView view = *archive->tensor(name);
      EXPECT_GE(view.data.data(), whole.data());
      EXPECT_LE(view.data.data() + view.data.size(), whole.data() + whole.size());
      EXPECT_EQ(view.data.size(), static_cast<std::size_t>(view.numel()) * dtype_size(view.dtype));
    }
  }
  EXPECT_GT(parsed, 0);  // some flips (inside names or metadata) keep the file valid
}

}  // namespace
}  // namespace semid::safetensors
