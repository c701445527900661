// Boost.Test entry point for the src/core unit tests.
#define BOOST_TEST_MODULE crm_core
#include <boost/test/unit_test.hpp>
