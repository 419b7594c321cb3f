#!/usr/bin/env bash
# Installs the system packages the project needs: OpenMPI (mpirun, the launcher of distributed GPU training), a C++
# compiler (for the custom kernels) and oneDNN's headers (libdnnl-dev, for the convolution kernels); with --browser
# also Chromium and its driver (for the claims page's browser test).
# Uses apt-get; run as root or with sudo available.
# Usage: bash scripts/install_system_deps.sh [--browser]
set -euo pipefail

packages=()
if [ "${1:-}" = "--browser" ]; then
    command -v chromium >/dev/null 2>&1 || packages+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || packages+=(chromium-driver)
fi
command -v mpirun >/dev/null 2>&1 || packages+=(openmpi-bin)
command -v g++ >/dev/null 2>&1 || packages+=(g++)
[ -f /usr/include/oneapi/dnnl/dnnl.hpp ] || packages+=(libdnnl-dev)

if [ ${#packages[@]} -eq 0 ]; then
  echo "System dependencies already installed."
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: apt-get not found; install these packages with your package manager: ${packages[*]}" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: need root (or sudo) to install: ${packages[*]}" >&2; exit 1
  fi
fi
echo "Installing system packages: ${packages[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}"
