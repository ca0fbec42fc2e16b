// cli/Parse.h: the numbers of --set, :set and :new ... vector, and the text nyto writes them back
// as (REPL values, scalar and per-member-vector results of `nyto run`), which must read back exactly.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cli/Parse.h"

using nyto::cli::number_text;
using nyto::cli::numbers_error;
using nyto::cli::numbers_text;

TEST_CASE("numbers_error: one number, or comma-separated numbers each read as one") {
  std::vector<double> v;
  bool vector = true;
  CHECK(numbers_error("0.5", &v, &vector).empty());
  CHECK(!vector);
  CHECK(v == std::vector<double>{0.5});
  CHECK(numbers_error("3,1,4,2", &v, &vector).empty());
  CHECK(vector);
  CHECK(v == std::vector<double>{3, 1, 4, 2});
  CHECK(numbers_error(" 0x1p-1 , -2,1e1,inf", &v, &vector).empty());
  CHECK(v == std::vector<double>{0.5, -2, 10, INFINITY});
  CHECK(numbers_error("nan,1", &v, &vector).empty());
  CHECK(std::isnan(v[0]));
  CHECK(v[1] == 1);
  // Errors name the value and leave *out as it was.
  v = {7};
  CHECK(numbers_error("1,zz,3", &v, &vector) == "'zz' (value 2 of 3) is not a number");
  CHECK(numbers_error("1,2,", &v, &vector) == "value 3 of 3 is empty");
  CHECK(numbers_error(",1", &v, &vector) == "value 1 of 2 is empty");
  CHECK(numbers_error("1, ,2", &v, &vector) == "value 2 of 3 is empty");
  CHECK(numbers_error("1,1e999", &v, &vector) == "'1e999' (value 2 of 2) is beyond the range of a double");
  CHECK(numbers_error("1 2,3", &v, &vector) == "'1 2' (value 1 of 2) is not a number");
  CHECK(numbers_error("abc", &v, &vector) == "'abc' is not a number");
  CHECK(v == std::vector<double>{7});
}

TEST_CASE("number_text and numbers_text: the shortest text that reads back exactly") {
  CHECK(number_text(0.1) == "0.1");
  CHECK(number_text(2050) == "2050");
  CHECK(number_text(-0.25) == "-0.25");
  CHECK(number_text(1e300) == "1e+300");
  CHECK(number_text(INFINITY) == "inf");
  CHECK(number_text(-INFINITY) == "-inf");
  CHECK(number_text(std::nan("")) == "nan");
  CHECK(numbers_text({3, 1, 4, 2}, ",") == "3,1,4,2");
  CHECK(numbers_text({0.5, -1}, "\n") == "0.5\n-1");
  CHECK(numbers_text({}, ",").empty());
  // Round trip: what `nyto run` prints for a vector result, --set reads back to the same values.
  const std::vector<double> values = {0.1 + 0.2, 1.0 / 3, -1e-310, std::numeric_limits<double>::max(),
                                      std::numeric_limits<double>::denorm_min(), 123456789012345678.0, -0.0};
  std::vector<double> back;
  bool vector = false;
  REQUIRE(numbers_error(numbers_text(values, ","), &back, &vector).empty());
  CHECK(vector);
  REQUIRE(back.size() == values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    CAPTURE(i);
    CHECK(back[i] == values[i]);
    CHECK(std::signbit(back[i]) == std::signbit(values[i]));
  }
}
