#include "index/vecs_io.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "index/file_util.h"
#include "tests/test_util.h"

namespace semid {
namespace {

using Code = Status::Code;

// Raw little-endian bytes, built by hand so that the readers are checked against the format,
// not against our own writers.
class Bytes {
 public:
  template <typename T>
  Bytes& put(T value) {
    const auto* p = reinterpret_cast<const char*>(&value);
    data_.append(p, sizeof(T));
    return *this;
  }
  Bytes& raw(const std::string& s) {
    data_ += s;
    return *this;
  }
  const std::string& str() const { return data_; }

 private:
  std::string data_;
};

// A texmex record: the int32 dimension, then the values.
template <typename T>
void put_record(Bytes& b, const std::vector<T>& values) {
  b.put(static_cast<std::int32_t>(values.size()));
  for (T v : values) b.put(v);
}

// An .npy file with the given header dictionary (version `major`.0), then `data`.
std::string npy_bytes(const std::string& dict, const std::string& data, int major = 1) {
  Bytes b;
  b.raw(std::string("\x93NUMPY", 6)).put(static_cast<std::uint8_t>(major)).put(std::uint8_t{0});
  if (major == 1) {
    b.put(static_cast<std::uint16_t>(dict.size()));
  } else {
    b.put(static_cast<std::uint32_t>(dict.size()));
  }
  b.raw(dict).raw(data);
  return b.str();
}

std::string float_data(const std::vector<float>& values) {
  Bytes b;
  for (float v : values) b.put(v);
  return b.str();
}

class VecsIoTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = dir_.file(name);
    EXPECT_TRUE(write_file_atomically(path, content).is_ok());
    return path;
  }
  // Asserts that `status` has `code` and that its message names the file and contains `needle`.
  static void expect_error(const Status& status, Code code, const std::string& path,
                           const std::string& needle) {
    EXPECT_EQ(status.code(), code) << status.to_string();
    EXPECT_NE(status.message().find(path), std::string::npos) << status.to_string();
    EXPECT_NE(status.message().find(needle), std::string::npos)
        << "'" << needle << "' not in: " << status.to_string();
  }

  FloatMatrix sample_floats(std::size_t rows, std::size_t cols) {
    FloatMatrix m(rows, cols);
    for (std::size_t k = 0; k < m.data.size(); ++k) m.data[k] = static_cast<float>(k) * 0.5f - 3.f;
    return m;
  }

  testing::TempDir dir_;
};

// ---- formats and round trips ------------------------------------------------------------------

TEST_F(VecsIoTest, FormatFromPath) {
  EXPECT_EQ(*format_from_path("a/b.fvecs"), VecsFormat::kFvecs);
  EXPECT_EQ(*format_from_path("b.ivecs"), VecsFormat::kIvecs);
  EXPECT_EQ(*format_from_path("b.bvecs"), VecsFormat::kBvecs);
  EXPECT_EQ(*format_from_path("b.npy"), VecsFormat::kNpy);
  auto r = format_from_path("vectors.txt");
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), Code::kInvalidArgument, "vectors.txt", "extension");
  EXPECT_STREQ(format_name(VecsFormat::kBvecs), "bvecs");
}

TEST_F(VecsIoTest, ReadsHandWrittenFvecs) {
  Bytes b;
  put_record<float>(b, {1.f, 2.f, 3.f});
  put_record<float>(b, {-4.f, 5.5f, 6.f});
  const std::string path = write("a.fvecs", b.str());
  auto m = read_float_vectors(path);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->rows, 2u);
  EXPECT_EQ(m->cols, 3u);
  EXPECT_EQ(m->data, (std::vector<float>{1, 2, 3, -4, 5.5f, 6}));
  auto shape = read_shape(path);
  ASSERT_TRUE(shape.is_ok());
  EXPECT_EQ(shape->rows, 2u);
  EXPECT_EQ(shape->cols, 3u);
}

TEST_F(VecsIoTest, FvecsRoundTrip) {
  const FloatMatrix m = sample_floats(7, 5);
  const std::string path = dir_.file("m.fvecs");
  ASSERT_TRUE(write_fvecs(path, m).is_ok());
  EXPECT_EQ(read_file(path)->size(), 7u * (4 + 5 * 4));
  auto back = read_float_vectors(path);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->rows, 7u);
  EXPECT_EQ(back->cols, 5u);
  EXPECT_EQ(back->data, m.data);
}

TEST_F(VecsIoTest, AnOpenedFileReadsAnyRangeLikeTheOneShotReaders) {
  const FloatMatrix m = sample_floats(9, 4);
  const std::string path = dir_.file("m.fvecs");
  ASSERT_TRUE(write_fvecs(path, m).is_ok());
  auto file = VectorFile::open(path);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  EXPECT_EQ(file->shape().rows, 9u);
  EXPECT_EQ(file->shape().cols, 4u);
  for (std::size_t first : {0, 3, 8, 9}) {
    ReadOptions range;
    range.first_row = first;
    range.max_rows = 4;
    auto streamed = file->read_floats(range);
    auto one_shot = read_float_vectors(path, range);
    ASSERT_TRUE(streamed.is_ok() && one_shot.is_ok());
    EXPECT_EQ(streamed->rows, one_shot->rows);
    EXPECT_EQ(streamed->data, one_shot->data);
  }
  ReadOptions past;
  past.first_row = 10;
  expect_error(file->read_floats(past).status(), Code::kInvalidArgument, "m.fvecs", "past the end");
  expect_error(file->read_int32().status(), Code::kInvalidArgument, "m.fvecs", "cannot be read as");
  expect_error(VectorFile::open(dir_.file("absent.fvecs")).status(), Code::kNotFound,
               "absent.fvecs", "absent.fvecs");
}

TEST_F(VecsIoTest, IvecsRoundTripAsInt32AndInt64) {
  Int32Matrix m(3, 4);
  for (std::size_t k = 0; k < m.data.size(); ++k) m.data[k] = static_cast<std::int32_t>(k) - 5;
  m.data[0] = std::numeric_limits<std::int32_t>::min();
  m.data[1] = std::numeric_limits<std::int32_t>::max();
  const std::string path = dir_.file("m.ivecs");
  ASSERT_TRUE(write_ivecs(path, m).is_ok());
  auto back = read_int32_vectors(path);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->data, m.data);
  auto wide = read_int64_vectors(path);
  ASSERT_TRUE(wide.is_ok());
  EXPECT_EQ(wide->rows, 3u);
  ASSERT_EQ(wide->cols, 4u);
  for (std::size_t k = 0; k < m.data.size(); ++k) EXPECT_EQ(wide->data[k], m.data[k]);
}

TEST_F(VecsIoTest, BvecsRoundTripWidensToFloat) {
  Matrix<std::uint8_t> m(2, 3);
  m.data = {0, 17, 255, 1, 2, 3};
  const std::string path = dir_.file("m.bvecs");
  ASSERT_TRUE(write_bvecs(path, m).is_ok());
  EXPECT_EQ(read_file(path)->size(), 2u * (4 + 3));
  auto back = read_float_vectors(path);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->data, (std::vector<float>{0, 17, 255, 1, 2, 3}));
}

TEST_F(VecsIoTest, NpyFloatRoundTripHasAlignedV1Header) {
  const FloatMatrix m = sample_floats(4, 3);
  const std::string path = dir_.file("m.npy");
  ASSERT_TRUE(write_npy(path, m).is_ok());
  const std::string bytes = *read_file(path);
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  std::uint16_t header_len = 0;
  std::memcpy(&header_len, bytes.data() + 8, 2);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_EQ(bytes[9 + header_len], '\n');
  const std::string header = bytes.substr(10, header_len);
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
  EXPECT_NE(header.find("'shape': (4, 3)"), std::string::npos) << header;
  EXPECT_EQ(bytes.size(), 10u + header_len + 4 * 3 * 4);
  auto back = read_float_vectors(path);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->rows, 4u);
  EXPECT_EQ(back->cols, 3u);
  EXPECT_EQ(back->data, m.data);
}

TEST_F(VecsIoTest, NpyInt32AndInt64RoundTrip) {
  Int32Matrix m32(2, 2);
  m32.data = {-1, 2, 300000, -7};
  ASSERT_TRUE(write_npy(dir_.file("a.npy"), m32).is_ok());
  EXPECT_EQ(read_int32_vectors(dir_.file("a.npy"))->data, m32.data);
  EXPECT_EQ(read_int64_vectors(dir_.file("a.npy"))->data,
            (std::vector<std::int64_t>{-1, 2, 300000, -7}));

  Int64Matrix m64(3, 1);
  m64.data = {std::int64_t{1} << 40, -5, 9};
  ASSERT_TRUE(write_npy(dir_.file("b.npy"), m64).is_ok());
  EXPECT_EQ(read_int64_vectors(dir_.file("b.npy"))->data, m64.data);
  // Narrowing to int32 is checked value by value.
  auto narrow = read_int32_vectors(dir_.file("b.npy"));
  ASSERT_FALSE(narrow.is_ok());
  expect_error(narrow.status(), Code::kInvalidArgument, "b.npy", "row 0, column 0");

  Int64Matrix small(1, 2);
  small.data = {7, -8};
  ASSERT_TRUE(write_npy(dir_.file("c.npy"), small).is_ok());
  EXPECT_EQ(read_int32_vectors(dir_.file("c.npy"))->data, (std::vector<std::int32_t>{7, -8}));
}

TEST_F(VecsIoTest, NpyVersions2And3AndOneDimensionalArrays) {
  const std::string data = float_data({1, 2, 3});
  for (int major : {1, 2, 3}) {
    std::string name = std::to_string(major);  // (not "v" + ...: GCC 12 -Wrestrict false alarm)
    name += ".npy";
    const std::string path = write(name, npy_bytes("{'descr': '<f4', 'fortran_order': False, "
                                                   "'shape': (3,), }\n",
                                                   data, major));
    auto m = read_float_vectors(path);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    EXPECT_EQ(m->rows, 3u);
    EXPECT_EQ(m->cols, 1u);
    EXPECT_EQ(m->data, (std::vector<float>{1, 2, 3}));
  }
  // Keys in another order, double quotes, no trailing comma.
  const std::string path =
      write("order.npy",
            npy_bytes("{\"shape\": (1, 3), \"fortran_order\": False, \"descr\": \"<f4\"}", data));
  auto m = read_float_vectors(path);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->cols, 3u);
}

TEST_F(VecsIoTest, WriteByExtension) {
  const FloatMatrix m = sample_floats(2, 2);
  ASSERT_TRUE(write_float_vectors(dir_.file("x.fvecs"), m).is_ok());
  ASSERT_TRUE(write_float_vectors(dir_.file("x.npy"), m).is_ok());
  EXPECT_EQ(read_float_vectors(dir_.file("x.fvecs"))->data, m.data);
  EXPECT_EQ(read_float_vectors(dir_.file("x.npy"))->data, m.data);
  expect_error(write_float_vectors(dir_.file("x.ivecs"), m), Code::kInvalidArgument, "x.ivecs",
               ".fvecs or .npy");
  Int32Matrix ids(1, 2);
  ids.data = {4, 5};
  ASSERT_TRUE(write_int32_vectors(dir_.file("g.ivecs"), ids).is_ok());
  EXPECT_EQ(read_int32_vectors(dir_.file("g.ivecs"))->data, ids.data);
  expect_error(write_int32_vectors(dir_.file("g.csv"), ids), Code::kInvalidArgument, "g.csv",
               "extension");
}

TEST_F(VecsIoTest, WritersRejectBadShapes) {
  FloatMatrix wrong(2, 3);
  wrong.data.pop_back();
  expect_error(write_fvecs(dir_.file("w.fvecs"), wrong), Code::kInvalidArgument, "w.fvecs",
               "holds 5 values");
  FloatMatrix no_cols(3, 0);
  expect_error(write_npy(dir_.file("w.npy"), no_cols), Code::kInvalidArgument, "w.npy",
               "dimension 0");
  expect_error(write_fvecs(dir_.file("w.fvecs"), no_cols), Code::kInvalidArgument, "w.fvecs",
               "dimension 0");
  EXPECT_FALSE(std::filesystem::exists(dir_.file("w.fvecs")));
}

TEST_F(VecsIoTest, EmptyTexmexFileIsZeroRows) {
  ASSERT_TRUE(write_fvecs(dir_.file("e.fvecs"), FloatMatrix{}).is_ok());
  auto m = read_float_vectors(dir_.file("e.fvecs"));
  ASSERT_TRUE(m.is_ok());
  EXPECT_EQ(m->rows, 0u);
  EXPECT_TRUE(m->data.empty());
}

// ---- row ranges -------------------------------------------------------------------------------

TEST_F(VecsIoTest, RowRangesInEveryFormat) {
  const FloatMatrix m = sample_floats(10, 3);
  ASSERT_TRUE(write_fvecs(dir_.file("r.fvecs"), m).is_ok());
  ASSERT_TRUE(write_npy(dir_.file("r.npy"), m).is_ok());
  for (const std::string name : {"r.fvecs", "r.npy"}) {
    ReadOptions options;
    options.first_row = 4;
    options.max_rows = 3;
    auto part = read_float_vectors(dir_.file(name), options);
    ASSERT_TRUE(part.is_ok()) << part.status().to_string();
    EXPECT_EQ(part->rows, 3u);
    EXPECT_EQ(part->cols, 3u);
    EXPECT_EQ(part->data, std::vector<float>(m.data.begin() + 12, m.data.begin() + 21)) << name;

    options.first_row = 8;
    options.max_rows = 100;  // clipped at the end
    EXPECT_EQ(read_float_vectors(dir_.file(name), options)->rows, 2u);

    options.first_row = 10;  // exactly the end: empty, with the file's width
    auto empty = read_float_vectors(dir_.file(name), options);
    ASSERT_TRUE(empty.is_ok());
    EXPECT_EQ(empty->rows, 0u);
    EXPECT_EQ(empty->cols, 3u);

    options.first_row = 11;
    auto past = read_float_vectors(dir_.file(name), options);
    ASSERT_FALSE(past.is_ok());
    expect_error(past.status(), Code::kInvalidArgument, name, "first_row 11");
  }
  Int32Matrix ids(5, 2);
  for (std::size_t k = 0; k < ids.data.size(); ++k) ids.data[k] = static_cast<std::int32_t>(k);
  ASSERT_TRUE(write_ivecs(dir_.file("r.ivecs"), ids).is_ok());
  ReadOptions options;
  options.first_row = 3;
  EXPECT_EQ(read_int32_vectors(dir_.file("r.ivecs"), options)->data,
            (std::vector<std::int32_t>{6, 7, 8, 9}));
}

// ---- malformed texmex files -------------------------------------------------------------------

TEST_F(VecsIoTest, TruncatedTrailingRecordIsCorruption) {
  Bytes b;
  put_record<float>(b, {1, 2, 3});
  put_record<float>(b, {4, 5, 6});
  const std::string full = b.str();
  const std::string path = write("t.fvecs", full.substr(0, full.size() - 2));
  auto r = read_float_vectors(path);
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), Code::kCorruption, path, "truncated record 1");
  EXPECT_EQ(read_shape(path).status().code(), Code::kCorruption);
  // Only part of the next record's dimension.
  const std::string path2 = write("t2.fvecs", full.substr(0, 16 + 2));
  expect_error(read_float_vectors(path2).status(), Code::kCorruption, path2, "truncated record 1");
}

TEST_F(VecsIoTest, TruncatedHeaderIsCorruption) {
  const std::string path = write("h.fvecs", std::string("\x03\x00", 2));
  expect_error(read_float_vectors(path).status(), Code::kCorruption, path, "truncated header");
}

TEST_F(VecsIoTest, InconsistentDimensionsAreCorruption) {
  Bytes b;
  put_record<std::int32_t>(b, {1, 2, 3});
  put_record<std::int32_t>(b, {4, 5, 6});
  put_record<std::int32_t>(b, {7, 8});
  const std::string path = write("d.ivecs", b.str());
  auto r = read_int32_vectors(path);
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), Code::kCorruption, path, "record 2 has dimension 2");
}

TEST_F(VecsIoTest, ZeroNegativeAndHugeDimensionsAreRejected) {
  for (std::int32_t dim : {0, -1, static_cast<std::int32_t>(kMaxDimension + 1),
                           std::numeric_limits<std::int32_t>::max()}) {
    Bytes b;
    b.put(dim).put(1.f).put(2.f);
    const std::string path = write("z.fvecs", b.str());
    auto r = read_float_vectors(path);
    ASSERT_FALSE(r.is_ok()) << dim;
    expect_error(r.status(), Code::kInvalidArgument, path, "dimension " + std::to_string(dim));
  }
}

TEST_F(VecsIoTest, NonFiniteValuesNameRowAndColumn) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  Bytes b;
  put_record<float>(b, {1, 2});
  put_record<float>(b, {3, nan});
  const std::string path = write("n.fvecs", b.str());
  auto r = read_float_vectors(path);
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), Code::kInvalidArgument, path, "NaN at row 1, column 1");

  ReadOptions lenient;
  lenient.reject_non_finite = false;
  auto kept = read_float_vectors(path, lenient);
  ASSERT_TRUE(kept.is_ok());
  EXPECT_TRUE(std::isnan(kept->data[3]));
  ReadOptions first_row_only;
  first_row_only.max_rows = 1;
  EXPECT_TRUE(read_float_vectors(path, first_row_only).is_ok());

  const std::string npy = write("n.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, "
                                                   "'shape': (2, 2), }",
                                                   float_data({1, 2, -inf, 4})));
  expect_error(read_float_vectors(npy).status(), Code::kInvalidArgument, npy,
               "-Inf at row 1, column 0");
}

TEST_F(VecsIoTest, WrongFileKindForTheRequestedType) {
  Bytes b;
  put_record<std::int32_t>(b, {1, 2});
  const std::string path = write("i.ivecs", b.str());
  expect_error(read_float_vectors(path).status(), Code::kInvalidArgument, path, "int32");
  const FloatMatrix m = sample_floats(1, 2);
  ASSERT_TRUE(write_fvecs(dir_.file("f.fvecs"), m).is_ok());
  expect_error(read_int32_vectors(dir_.file("f.fvecs")).status(), Code::kInvalidArgument, "f.fvecs",
               "float32");
}

TEST_F(VecsIoTest, WrongExtensionAndMissingFile) {
  const std::string path = write("v.bin", "12345678");
  expect_error(read_float_vectors(path).status(), Code::kInvalidArgument, path, "extension");
  expect_error(read_shape(path).status(), Code::kInvalidArgument, path, "extension");
  const std::string missing = dir_.file("missing.fvecs");
  expect_error(read_float_vectors(missing).status(), Code::kNotFound, missing, "no such file");
}

// ---- malformed .npy files ---------------------------------------------------------------------

TEST_F(VecsIoTest, NpyWrongDtypesAreInvalidArgument) {
  const std::string data(16, '\0');
  for (const std::string descr : {"<f8", ">f4", "|u1", "<f2"}) {
    const std::string path = write(
        "dt.npy",
        npy_bytes("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (2, 2), }", data));
    auto r = read_float_vectors(path);
    ASSERT_FALSE(r.is_ok()) << descr;
    expect_error(r.status(), Code::kInvalidArgument, path, "dtype '" + descr + "'");
  }
}

TEST_F(VecsIoTest, NpyFortranOrderAndThreeDimensionsAreInvalidArgument) {
  const std::string data = float_data({1, 2, 3, 4, 5, 6, 7, 8});
  const std::string fortran =
      write("f.npy", npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 4), }", data));
  expect_error(read_float_vectors(fortran).status(), Code::kInvalidArgument, fortran, "Fortran");
  const std::string cube = write(
      "c.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", data));
  expect_error(read_float_vectors(cube).status(), Code::kInvalidArgument, cube, "3-D");
  const std::string scalar =
      write("s.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", data));
  expect_error(read_float_vectors(scalar).status(), Code::kInvalidArgument, scalar, "0-D");
}

TEST_F(VecsIoTest, NpyBadMagicAndHeaderPastEndAreCorruption) {
  const std::string magic = write("m.npy", "\x93NUMPZ\x01\x00\x10\x00{}");
  expect_error(read_float_vectors(magic).status(), Code::kCorruption, magic, "bad magic");
  const std::string tiny = write("tiny.npy", "\x93NUM");
  expect_error(read_float_vectors(tiny).status(), Code::kCorruption, tiny, "bad magic");
  Bytes b;
  b.raw(std::string("\x93NUMPY\x01\x00", 8)).put(std::uint16_t{500}).raw("{'descr': '<f4'");
  const std::string past = write("p.npy", b.str());
  expect_error(read_float_vectors(past).status(), Code::kCorruption, past, "past the end");
  const std::string short_header = write("sh.npy", std::string("\x93NUMPY\x01\x00\x05", 9));
  expect_error(read_float_vectors(short_header).status(), Code::kCorruption, short_header,
               "truncated .npy header");
  const std::string version = write("ver.npy", npy_bytes("{}", "", 4));
  expect_error(read_float_vectors(version).status(), Code::kCorruption, version, "version 4");
}

TEST_F(VecsIoTest, NpyMalformedHeaderDictionaries) {
  const std::string data = float_data({1, 2});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }", "does not start"},
      {"{'descr': '<f4', 'fortran_order': False}", "lacks"},
      {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1, 2)}", "fortran_order"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, -2)}", "shape"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'x': 1}", "unexpected key"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2)} junk", "after the closing"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999, 2)}", "shape"},
  };
  for (const auto& [dict, needle] : cases) {
    const std::string path = write("bad.npy", npy_bytes(dict, data));
    auto r = read_float_vectors(path);
    ASSERT_FALSE(r.is_ok()) << dict;
    expect_error(r.status(), Code::kCorruption, path, needle);
  }
}

TEST_F(VecsIoTest, NpyDataSizeMustMatchTheShape) {
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
  const std::string truncated = write("t.npy", npy_bytes(dict, float_data({1, 2, 3})));
  expect_error(read_float_vectors(truncated).status(), Code::kCorruption, truncated,
               "truncated .npy data");
  const std::string extra = write("x.npy", npy_bytes(dict, float_data({1, 2, 3, 4, 5})));
  expect_error(read_float_vectors(extra).status(), Code::kCorruption, extra, "unexpected bytes");
  // A shape whose byte count overflows is rejected before anything is allocated.
  const std::string huge = write("huge.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, "
                                                       "'shape': (9223372036854775807, 1024), }",
                                                       ""));
  expect_error(read_float_vectors(huge).status(), Code::kInvalidArgument, huge, "overflows");
  const std::string wide = write(
      "wide.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 0), }", ""));
  expect_error(read_float_vectors(wide).status(), Code::kInvalidArgument, wide, "dimension 0");
}

// ---- the shared sift5k fixture ----------------------------------------------------------------

TEST(VecsIoSift5k, ShapesKnownValuesAndGroundTruth) {
  const auto dir = semid::testing::datasets_dir() / "sift5k";
  SEMID_REQUIRE_DATASET(dir);
  auto base = read_float_vectors((dir / "ngt_sift5k_base.fvecs").string());
  auto query = read_float_vectors((dir / "ngt_sift5k_query3.fvecs").string());
  auto gt = read_int32_vectors((dir / "ngt_sift5k_query3_groundtruth.ivecs").string());
  ASSERT_TRUE(base.is_ok()) << base.status().to_string();
  ASSERT_TRUE(query.is_ok()) << query.status().to_string();
  ASSERT_TRUE(gt.is_ok()) << gt.status().to_string();
  EXPECT_EQ(base->rows, 5000u);
  EXPECT_EQ(base->cols, 128u);
  EXPECT_EQ(query->rows, 3u);
  EXPECT_EQ(query->cols, 128u);
  EXPECT_EQ(gt->rows, 3u);
  EXPECT_EQ(gt->cols, 100u);

  // Values read off the files independently (python3 struct.unpack).
  EXPECT_EQ(base->row(0)[8], 13.f);
  EXPECT_EQ(base->row(0)[9], 10.f);
  EXPECT_EQ(base->row(123)[5], 19.f);
  EXPECT_EQ(base->row(4999)[0], 36.f);
  EXPECT_EQ(base->row(4999)[3], 27.f);
  EXPECT_EQ(query->row(0)[1], 21.f);
  EXPECT_EQ(query->row(2)[127], 6.f);
  EXPECT_EQ(gt->row(0)[0], 3030);
  EXPECT_EQ(gt->row(1)[0], 2725);
  EXPECT_EQ(gt->row(2)[0], 761);

  // The first ground-truth neighbour of each query is its brute-force L2 nearest base row.
  for (std::size_t q = 0; q < query->rows; ++q) {
    double best = std::numeric_limits<double>::infinity();
    std::int32_t best_row = -1;
    for (std::size_t i = 0; i < base->rows; ++i) {
      double d = 0;
      for (std::size_t j = 0; j < base->cols; ++j) {
        const double diff = double(base->row(i)[j]) - query->row(q)[j];
        d += diff * diff;
      }
      if (d < best) {
        best = d;
        best_row = static_cast<std::int32_t>(i);
      }
    }
    EXPECT_EQ(gt->row(q)[0], best_row) << "query " << q;
  }
  // A row range of the real file matches the whole read.
  ReadOptions options;
  options.first_row = 4990;
  auto tail = read_float_vectors((dir / "ngt_sift5k_base.fvecs").string(), options);
  ASSERT_TRUE(tail.is_ok());
  ASSERT_EQ(tail->rows, 10u);
  EXPECT_EQ(tail->data, std::vector<float>(base->row(4990), base->row(4990) + 10 * 128));
}

}  // namespace
}  // namespace semid
