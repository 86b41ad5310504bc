// SPDX-License-Identifier: Apache-2.0
// The static cdi-containerimage-server executable: whatever its name (the controller runs the copy
// as /shared/server), it is the containerimage server.
#include "cmd/cdi-import/tools_cmd.hpp"

int main(int argc, char** argv) { return cdi::cmd::run_containerimage_server(argc, argv); }
