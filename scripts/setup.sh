# Sourced by test.sh and demo.sh: installs the Debian packages of scripts/packages.txt that are
# missing (one apt-get update, one apt-get install), then nothing on later runs.
nyto_install_packages() {
  local list missing=()
  list=$(grep -v '^#' "$(dirname "${BASH_SOURCE[0]}")/packages.txt" | grep -v '^$')
  for p in $list; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "nyto: installing missing packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# nyto_build DIR [cmake args...]: configures (once) and builds with every core.
# Unity builds of 4 sources per unit: most of a LibTorch unit's compile time is its headers
# (7.6 of test_version.cpp's 16 s), so a whole build takes a third less (plain build on 2 cores:
# 4 min 7 s against 6 min). A build configured by hand without them keeps one unit per source,
# the better choice while editing a single file.
nyto_build() {
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S . -B "$dir" -G Ninja -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=4 "$@"
  fi
  cmake --build "$dir" -j "$(nproc)"
}
