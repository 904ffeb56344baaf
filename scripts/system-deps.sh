#!/usr/bin/env bash
# Debian packages the app, the engines and the tests need. As root, installs the missing ones;
# otherwise prints the exact command to run and fails.
set -euo pipefail

PACKAGES=(
  # audio: PortAudio for sounddevice, PulseAudio + ALSA's pulse plugin for the tests' virtual devices
  libportaudio2 libasound2-data libasound2-plugins pulseaudio pulseaudio-utils sox
  # Qt (offscreen and xcb) and a font
  libgl1 libegl1 libglib2.0-0 libfontconfig1 libxkbcommon0 libdbus-1-3 fonts-dejavu-core
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0
  # a screen for window tests, screenshots, and the browser caller
  xvfb xauth x11-apps imagemagick chromium
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "These system packages are missing: ${missing[*]}" >&2
  echo "Install them with:  sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
