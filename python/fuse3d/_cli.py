"""The ``fuse3d`` console script and :func:`cli`: run the native binary shipped in this package.

The binary lives in ``fuse3d/_bin`` with its shared libraries (``_bin/lib``). It does not link libtorch: the
training commands open a small C++ bridge, ``libfuse3d_torch.so``, built against one PyTorch. Before running the
binary this module finds the ``torch`` of the Python environment it runs in (without importing it) and points the
binary at a bridge for that torch's version (``FUSE3D_TORCH``):

1. ``FUSE3D_TORCH`` already set: left alone.
2. a bridge shipped in the wheel for that minor version (``_bin/bridges/torch-2.13/``);
3. one built earlier on this machine (``$FUSE3D_CACHE`` or ``~/.cache/fuse3d/bridges/``);
4. for a training command (train, evaluate, predict, bench train), one built now from the bridge's source in
   ``_bin/torch`` with g++ against the installed torch's headers (about a minute, once per torch version).

Other commands never load libtorch, and run where torch is not installed.
"""
import os
import re
import shutil
import subprocess
import sys

from ._version import __version__

_HERE = os.path.dirname(os.path.abspath(__file__))
BIN_DIR = os.path.join(_HERE, "_bin")
BRIDGE = "libfuse3d_torch.so"
# Commands that train or run a model: the only ones a bridge is built for.
_TORCH_COMMANDS = {"train", "evaluate", "predict"}


def binary():
    """The path of the bundled ``fuse3d`` executable.

    >>> import fuse3d, os
    >>> os.access(fuse3d.binary(), os.X_OK)   # doctest: +SKIP
    True
    """
    path = os.path.join(BIN_DIR, "fuse3d")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"the fuse3d binary is missing from this installation ({path}): reinstall the wheel")
    return path


def find_torch():
    """(torch's folder, its version such as '2.13.0+cpu') of the environment this Python runs in, or None.

    torch is not imported: importing it costs seconds and the binary only needs its libraries."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    folder = os.path.dirname(spec.origin)
    try:
        with open(os.path.join(folder, "version.py"), encoding="utf-8") as f:
            match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", f.read(), re.M)
    except OSError:
        match = None
    if not match or not os.path.isdir(os.path.join(folder, "lib")):
        return None
    return folder, match.group(1)


def _minor(version):
    m = re.match(r"(\d+)\.(\d+)", version)
    return f"{m.group(1)}.{m.group(2)}" if m else version


def _cache_dir():
    base = os.environ.get("FUSE3D_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "fuse3d")
    return os.path.join(base, "bridges")


def _abi_tag():
    """The bridge interface this binary needs (CTORCH_ABI_HASH, recorded in the wheel at build time)."""
    try:
        with open(os.path.join(BIN_DIR, "bridges", "ABI"), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def _built_bridge_path(torch_version):
    return os.path.join(_cache_dir(), f"fuse3d-{__version__}-{_abi_tag()}", f"torch-{torch_version}", BRIDGE)


def build_bridge(torch_version, out, stream=None):
    """Builds the bridge against this Python's torch into `out` with the shipped script (needs g++ and bash)."""
    stream = stream or sys.stderr
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise RuntimeError(
            f"fuse3d: no libtorch bridge is shipped for torch {torch_version} (this wheel has one for "
            f"{', '.join(shipped_bridges()) or 'none'}), and it cannot be built here: no C++ compiler ({cxx}) on PATH. "
            f"Install g++ (Debian/Ubuntu: apt-get install g++), set CXX to a C++17 compiler, or install a supported "
            f"torch (pip install 'torch=={shipped_bridges()[-1] if shipped_bridges() else '2.13'}.*').")
    script = os.path.join(BIN_DIR, "torch", "build-torch-shim.sh")
    print(f"fuse3d: building the libtorch bridge for torch {torch_version} (once; about a minute) -> {out}",
          file=stream, flush=True)
    env = dict(os.environ, OUT=out, CXX=cxx)
    r = subprocess.run(["bash", script, sys.executable], env=env, stdout=stream, stderr=stream)
    if r.returncode != 0 or not os.path.isfile(out):
        raise RuntimeError(f"fuse3d: building the libtorch bridge for torch {torch_version} failed (see above)")
    return out


def shipped_bridges():
    """The PyTorch minor versions with a bridge in this wheel, e.g. ['2.13']."""
    folder = os.path.join(BIN_DIR, "bridges")
    if not os.path.isdir(folder):
        return []
    names = [n[len("torch-"):] for n in os.listdir(folder) if n.startswith("torch-")
             and os.path.isfile(os.path.join(folder, n, BRIDGE))]
    return sorted(names, key=lambda v: tuple(int(x) for x in v.split(".") if x.isdigit()))


def _needs_torch(args):
    words = [a for a in args if not a.startswith("-")]
    if not words:
        return False
    return words[0] in _TORCH_COMMANDS or words[:2] == ["bench", "train"]


def environment(args=(), build=True):
    """The environment to run the binary with: FUSE3D_TORCH pointing at a bridge for this Python's torch when
    there is one (built now for a training command when `build`), torch's lib folder on LD_LIBRARY_PATH."""
    env = dict(os.environ)
    if env.get("FUSE3D_TORCH"):
        return env
    found = find_torch()
    if found is None:
        if _needs_torch(args) and "--help" not in args and "-h" not in args:
            print(f"fuse3d: this command needs PyTorch, and the Python environment of {sys.executable} has none: "
                  f"pip install 'fuse3d[torch]' (or any torch 2.4 or newer), or set FUSE3D_TORCH to a built bridge.",
                  file=sys.stderr, flush=True)
        return env
    folder, version = found
    shipped = os.path.join(BIN_DIR, "bridges", f"torch-{_minor(version)}", BRIDGE)
    built = _built_bridge_path(version)
    if os.path.isfile(shipped):
        bridge = shipped
    elif os.path.isfile(built):
        bridge = built
    elif build and _needs_torch(args):
        bridge = build_bridge(version, built)
    else:
        return env
    env["FUSE3D_TORCH"] = bridge
    lib = os.path.join(folder, "lib")
    env["LD_LIBRARY_PATH"] = lib + (os.pathsep + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    return env


def cli(*args, check=True, capture=False, **kwargs):
    """Runs the bundled ``fuse3d`` with `args` (strings or paths) and returns the ``subprocess.CompletedProcess``.

    `check`: raise ``subprocess.CalledProcessError`` on a non-zero exit; `capture`: keep stdout and stderr as text
    (otherwise they go to this process's); other keyword arguments go to ``subprocess.run``.

    >>> import fuse3d
    >>> fuse3d.cli("synth", "--studies", "2", "--out", "cohort")                        # doctest: +SKIP
    >>> r = fuse3d.cli("verify", "shards", capture=True); print(r.stdout)             # doctest: +SKIP
    >>> fuse3d.cli("train", "shards", "--out", "run", "--epochs", "1")  # with torch    # doctest: +SKIP
    """
    argv = [os.fspath(a) for a in args]
    if capture:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
    return subprocess.run([binary()] + argv, env=environment(argv), check=check, **kwargs)


def main():
    """Entry point of the ``fuse3d`` console script: replaces this process with the binary."""
    argv = sys.argv[1:]
    try:
        env = environment(argv)
        exe = binary()
    except (RuntimeError, FileNotFoundError) as e:
        print(e, file=sys.stderr)
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(exe, ["fuse3d"] + argv, env)


if __name__ == "__main__":
    sys.exit(main())
