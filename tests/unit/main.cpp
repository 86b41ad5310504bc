// SPDX-License-Identifier: Apache-2.0
// Catch2 main lives alone in this TU (it is slow to compile).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
