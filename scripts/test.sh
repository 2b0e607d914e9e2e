#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install what is needed, build, and run every test (ctest). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure --timeout 600 "$@"
