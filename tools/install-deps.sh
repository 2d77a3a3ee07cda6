#!/usr/bin/env bash
# Installs the Debian packages the tests need, by package name: a package counts as present
# only when dpkg has it installed, never because some file of a similar name exists (the
# machine image ships libclang-cpp14, whose libclang-cpp.so once passed for libclang).
#
#   tools/install-deps.sh                 install what this machine lacks
#   tools/install-deps.sh --plan LIST     print what a machine whose installed packages are
#                                         LIST (one name a line) would get, install nothing
#   tools/install-deps.sh --verify        check that every file the build and tests use exists
set -euo pipefail

# Package, then what needs it. Keep in step with verify_artifacts below.
required=(
  # `--features video` decodes the datasets' MP4 frames with FFmpeg; ffmpeg-sys-next finds it
  # with pkg-config and generates its bindings with libclang (bindgen), which also needs
  # clang's own headers.
  pkg-config libavcodec-dev libavformat-dev libavutil-dev libswscale-dev clang libclang-dev
  # The wgpu backend's tests: the Vulkan loader and Mesa's software device lavapipe, where the
  # machine has no GPU driver.
  libvulkan1 mesa-vulkan-drivers
  # `brainstem eval sim`'s MuJoCo renders the camera offscreen through EGL, on Mesa's
  # software rasterizer where the machine has no GPU driver.
  libegl1 libegl-mesa0 libgl1-mesa-dri
  # The NEON kernels' tests: built with the aarch64 cross linker, run under qemu-user
  # (.cargo/config.toml names both).
  qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  # The C ABI test builds its C program with AddressSanitizer and UndefinedBehaviorSanitizer:
  # gcc's link stubs and the two runtimes.
  libgcc-12-dev libasan8 libubsan1
)

installed_here() {
  dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null | awk '$1 == "ii" { print $2 }'
}

# Prints the required packages absent from the installed list on standard input.
missing_from() {
  local installed
  installed=$(sort -u)
  for package in "${required[@]}"; do
    grep -qxF "$package" <<<"$installed" || echo "$package"
  done
}

verify_artifacts() {
  local failed=0
  check() { "$@" >/dev/null 2>&1 || { echo "install-deps: missing after install: $*" >&2; failed=1; }; }
  check pkg-config --exists libavcodec libavformat libavutil libswscale
  # clang-sys loads libclang.so (or libclang-N.so) from LLVM's library folder.
  check compgen -G "/usr/lib/llvm-*/lib/libclang.so*"
  check command -v clang
  check compgen -G "/usr/lib/*/libvulkan.so.1"
  check compgen -G "/usr/share/vulkan/icd.d/lvp_icd.*.json"
  check compgen -G "/usr/lib/*/libEGL.so.1"
  check compgen -G "/usr/lib/*/libEGL_mesa.so.0"
  check command -v qemu-aarch64-static
  check command -v aarch64-linux-gnu-gcc
  check compgen -G "/usr/lib/gcc/*/*/libasan.so"
  check compgen -G "/usr/lib/gcc/*/*/libubsan.so"
  python3 -m pip --version >/dev/null 2>&1 || { echo "install-deps: python3 has no pip" >&2; failed=1; }
  return "$failed"
}

case "${1:-}" in
  --plan) missing_from <"$2" ;;
  --verify) verify_artifacts ;;
  "")
    mapfile -t missing < <(installed_here | missing_from)
    # tools/fetch-smollm2.sh runs pip through python3: the image's own Python has it; a
    # machine whose python3 is Debian's gets Debian's pip.
    python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
    if ((${#missing[@]})); then
      echo "install-deps: installing ${missing[*]}" >&2
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    verify_artifacts
    ;;
  *) echo "usage: $0 [--plan INSTALLED_LIST | --verify]" >&2; exit 2 ;;
esac
