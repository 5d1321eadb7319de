"""open3d imports with pip alone: ``annotate.core.open3d_loader`` preloads the libusb that the
``libusb-package`` wheel ships when the system has none.

Each case runs in a fresh Python process, since a process imports open3d only once.
Where the machine has a system libusb the fallback cannot be exercised and the cases that
need its absence are skipped (saying so).
"""
from __future__ import annotations

import ctypes.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SYSTEM_LIBUSB = ctypes.util.find_library("usb-1.0")
needs_no_system_libusb = pytest.mark.skipif(
    SYSTEM_LIBUSB is not None, reason=f"this machine has a system libusb ({SYSTEM_LIBUSB}): the fallback is not used")


def run_child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


@needs_no_system_libusb
def test_plain_import_fails_here_without_the_preload():
    """The problem is real on this machine: open3d alone does not import."""
    child = run_child("import open3d")
    assert child.returncode != 0 and "libusb-1.0.so.0" in child.stderr


def test_loader_imports_open3d_and_casts_a_ray():
    child = run_child("""
        import numpy as np
        from annotate.core.open3d_loader import open3d_module
        o3d = open3d_module()
        scene = o3d.t.geometry.RaycastingScene()
        vertices = o3d.core.Tensor(np.array([[0, 0, 5], [1, 0, 5], [0, 1, 5]], np.float32))
        scene.add_triangles(vertices, o3d.core.Tensor(np.array([[0, 1, 2]], np.uint32)))
        rays = o3d.core.Tensor(np.array([[0.2, 0.2, 0, 0, 0, 1]], np.float32))
        print(scene.cast_rays(rays)["t_hit"].numpy()[0])
        print([line.split()[-1] for line in open("/proc/self/maps") if "libusb-1.0" in line][0])
    """)
    assert child.returncode == 0, child.stderr
    t_hit, libusb = child.stdout.split()
    assert float(t_hit) == pytest.approx(5.0)
    if SYSTEM_LIBUSB is None:                        # the wheel's copy is the one loaded
        import libusb_package

        assert Path(libusb) == Path(libusb_package.get_library_path())


@needs_no_system_libusb
def test_missing_libusb_package_is_named_in_the_error():
    child = run_child("""
        import sys
        sys.modules["libusb_package"] = None         # not installed
        from annotate.core.open3d_loader import open3d_module
        open3d_module()
    """)
    assert child.returncode != 0
    assert "ImportError: open3d needs libusb-1.0.so.0: install the 'libusb-package' wheel" in child.stderr


@needs_no_system_libusb
def test_a_libusb_package_without_the_library_is_reported():
    child = run_child("""
        import sys, types
        fake = types.ModuleType("libusb_package")
        fake.get_library_path = lambda: None         # a platform the wheel has no build for
        sys.modules["libusb_package"] = fake
        from annotate.core.open3d_loader import open3d_module
        open3d_module()
    """)
    assert child.returncode != 0 and "libusb-package ships no library for this platform" in child.stderr


def test_other_import_errors_are_not_masked():
    child = run_child("""
        import sys
        sys.modules["open3d"] = None                 # open3d itself missing
        from annotate.core.open3d_loader import open3d_module
        open3d_module()
    """)
    assert child.returncode != 0
    assert child.stderr.strip().splitlines()[-1] == "ModuleNotFoundError: import of open3d halted; None in sys.modules"
