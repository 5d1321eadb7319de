"""Import open3d on machines without the system libusb.

The open3d wheel links ``libusb-1.0.so.0`` and fails at import where the system library
is missing (minimal containers, CI). The ``libusb-package`` wheel ships that library; loading
it into the global symbol namespace first satisfies open3d's dependency with pip alone.
Every module that needs open3d imports it through ``open3d_module()``.
"""
from __future__ import annotations

import ctypes
import functools


@functools.lru_cache(maxsize=1)
def open3d_module():
    """Return the ``open3d`` module, preloading the bundled libusb if needed."""
    try:
        import open3d  # noqa: F401  (system libusb present)
        return open3d
    except ImportError as first_error:
        if "libusb" not in str(first_error):
            raise
        try:
            import libusb_package
        except ImportError:
            raise ImportError(
                "open3d needs libusb-1.0.so.0: install the 'libusb-package' wheel "
                "(pip install libusb-package) or the system package libusb-1.0-0") from first_error
        path = libusb_package.get_library_path()
        if path is None:
            raise ImportError("libusb-package ships no library for this platform") from first_error
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        import open3d
        return open3d
