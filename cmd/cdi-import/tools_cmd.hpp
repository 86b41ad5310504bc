// SPDX-License-Identifier: Apache-2.0
// The programs CDI's controller runs inside the importer image besides the importer itself
// (README "Running inside CDI"): cdi-containerimage-server (a static executable of its own: it is
// copied into the user's containerDisk image), cdi-image-size-detection and
// cdi-source-update-poller (names of the cdi-import binary). Go flag syntax, Go log lines.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lib/pod/go_flags.hpp"

namespace cdi::cmd {

int run_containerimage_server(int argc, char** argv);
int run_image_size_detection(int argc, char** argv);
int run_source_update_poller(int argc, char** argv);

// Go's log package line: "2006/01/02 15:04:05 msg" (local time), to stderr.
void go_log(std::string_view msg);

// Parses Go flags; prints the usage (-h: exit 0) or Go's error + usage (exit 2) like
// flag.ExitOnError. Returns -1 when the program goes on.
int go_flags_or_exit(int argc, char** argv, const std::vector<pod::GoFlag>& flags);

// strerror with a lower-case first letter, as Go's syscall errors read.
std::string go_errno_text(int err);

}  // namespace cdi::cmd
