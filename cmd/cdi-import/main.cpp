// SPDX-License-Identifier: Apache-2.0
#include <cstdio>
int main() { std::puts("cdi-import " CDI_VERSION); return 0; }
