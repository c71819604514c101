"""What some tests need from the machine (a Vulkan driver, Chromium, Debian's Fashion-MNIST, root
to mount a small disk): missing, the test skips, or fails where the run was told it must be there
(`pytest --require gpu,browser,datasets,root,strace`, or `--require all` as .ci/run does; see
conftest.py)."""

import contextlib
import os
import shutil
import subprocess

import pytest

SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json"
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NEEDS = ("gpu", "browser", "datasets", "root", "strace")
# Filled by conftest.py from --require: the needs whose absence fails a test instead of skipping it.
REQUIRED = set()


def use_swiftshader():
    """LiteRT's GPU accelerator runs on Vulkan: with no Vulkan driver chosen, SwiftShader (the software
    driver of Debian's chromium package) where it is installed. Subprocesses inherit the choice."""
    if os.path.exists(SWIFTSHADER_ICD) and not (os.environ.get("VK_ICD_FILENAMES") or os.environ.get("VK_DRIVER_FILES")):
        os.environ["VK_ICD_FILENAMES"] = SWIFTSHADER_ICD
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # the Vulkan loader warns without one


def missing(need, message):
    """Skips the running test for a missing `need`, or fails it when the run requires that need."""
    if need in REQUIRED:
        pytest.fail(f"{message} (required by --require {need})")
    pytest.skip(message)


def require_gpu():
    """For a test that needs LiteRT's GPU accelerator: a Vulkan driver must be configured."""
    if not (os.environ.get("VK_ICD_FILENAMES") or os.environ.get("VK_DRIVER_FILES")):
        missing("gpu", f"no Vulkan driver for LiteRT's GPU accelerator: apt install chromium libvulkan1 (SwiftShader, {SWIFTSHADER_ICD})")


def require_browser():
    if not os.path.exists(CHROMIUM):
        missing("browser", f"Debian's chromium is not installed at {CHROMIUM}: apt install chromium")


def require_fashion_mnist():
    if not os.path.isdir(DEBIAN_FASHION_MNIST):
        missing("datasets", f"Debian's Fashion-MNIST is not installed at {DEBIAN_FASHION_MNIST}: apt install dataset-fashion-mnist")


def require_strace():
    """For a test that watches another process's file reads from outside."""
    if shutil.which("strace") is None:
        missing("strace", "strace is not installed (it watches which files a process reads): apt install strace")


@contextlib.contextmanager
def small_filesystem(path, size, *, read_only=False):
    """A tmpfs of `size` mounted at `path` (needs root)."""
    os.makedirs(path)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        missing("root", f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
