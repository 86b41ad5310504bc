// SPDX-License-Identifier: Apache-2.0
// /proc/self/mountinfo fields (proc(5)).
#pragma once

#include <string>
#include <string_view>

namespace cdi::util {

// A mountinfo path field with the kernel's octal escapes (\040 space, \011 tab, \012 newline,
// \134 backslash) decoded; anything that is not a valid escape is kept as it is.
std::string unescape_mountinfo(std::string_view s);

}  // namespace cdi::util
