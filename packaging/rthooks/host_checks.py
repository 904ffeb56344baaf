"""PyInstaller runtime hook: what the bundle needs from the host, checked before anything loads it.

- sounddevice finds PortAudio with `ctypes.util.find_library`, which only looks at the system: point
  it at the bundled `libportaudio.so.2`.
- The bundled ALSA library aborts the process (exit 134, no message) when the host has no
  `/usr/share/alsa/alsa.conf`: then PortAudio is reported missing instead (the app opens without
  audio devices) and the message says what to install.
- The window needs the host's libGL/libEGL (never bundled: they belong to the graphics driver).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_BUNDLE = getattr(sys, "_MEIPASS", os.path.dirname(sys.executable))
_PORTAUDIO = os.path.join(_BUNDLE, "libportaudio.so.2")
_ALSA_CONF = "/usr/share/alsa/alsa.conf"
# The self-test and the child processes the bundle starts of itself (an agent, the llama.cpp server) open no window.
_HEADLESS_FLAGS = ("--self-test", "--run-agent", "--run-llm-server")
_system_find_library = ctypes.util.find_library
_warned = False


def _find_library(name: str) -> str | None:
    global _warned
    if name != "portaudio":
        return _system_find_library(name)
    if not os.path.exists(_ALSA_CONF) and "ALSA_CONFIG_PATH" not in os.environ:
        if not _warned:
            _warned = True
            print(f"conversimple-studio: audio devices are disabled: {_ALSA_CONF} is missing, and ALSA "
                  "aborts without it. Install it: sudo apt-get install libasound2-data", file=sys.stderr)
        return None
    return _PORTAUDIO if os.path.exists(_PORTAUDIO) else _system_find_library(name)


def _missing_graphics_libraries() -> list[str]:
    missing = []
    for soname, package in (("libGL.so.1", "libgl1"), ("libEGL.so.1", "libegl1")):
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(package)
    return missing


ctypes.util.find_library = _find_library
if not any(flag in sys.argv[1:] for flag in _HEADLESS_FLAGS):
    packages = _missing_graphics_libraries()
    if packages:
        print(f"conversimple-studio: cannot open the window: the system's OpenGL libraries are missing "
              f"({', '.join(packages)}). Install them: sudo apt-get install {' '.join(packages)}\n"
              "(`conversimple-studio --self-test` runs without them.)", file=sys.stderr)
        sys.exit(3)
