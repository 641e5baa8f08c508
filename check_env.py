"""Is this machine ready to train? Packages, Keras backend, accelerators, data, FID, disk.

Prints one line per check and, when something required is missing, a list of what
to install or fix, with exit status 1 (0 when ready). Versions that differ from the
tested ones in requirements.txt are noted but do not fail the check. It does not
install anything, download data or build caches.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import shutil
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

import cli
from quiet_keras import native_stderr_silenced

PROJECT_DIR = Path(__file__).resolve().parent
MIN_PYTHON = (3, 10)
MIN_KERAS = Version("3.8")  # 3.3-3.7 broke stacked-GAN loss tracking (keras-team/keras#20474)
MIN_FREE_GB = 2.0
# Install name -> import name, where they differ.
IMPORT_NAMES = {
    "opencv-python-headless": "cv2",
    "opencv-python": "cv2",
    "pillow": "PIL",
    "scikit-learn": "sklearn",
    "pyyaml": "yaml",
}


def read_requirements(path: Path) -> list[Requirement]:
    """The package requirements of a requirements file (comments and -r lines skipped)."""
    requirements = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirements.append(Requirement(line))
    return requirements


def check_package(requirement: Requirement) -> tuple[bool, str]:
    """(ok, report line) for one requirement: installed, importable, which version."""
    name = requirement.name
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False, f"{name}: not installed (pip install -r requirements.txt)"
    module = IMPORT_NAMES.get(name.lower(), name.lower().replace("-", "_"))
    try:
        with native_stderr_silenced():
            importlib.import_module(module)
    except Exception as error:  # a broken install can raise anything on import
        return False, f"{name} {installed}: installed but `import {module}` fails: {error}"
    if name.lower() == "keras" and Version(installed) < MIN_KERAS:
        return False, f"keras {installed}: need >= {MIN_KERAS} (keras-team/keras#20474)"
    tested = "" if installed in requirement.specifier else f" (tested with {requirement.specifier})"
    return True, f"{name} {installed}{tested}"


def accelerators(backend: str) -> list[str]:
    """Accelerator devices the Keras backend can use."""
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices() if d.device_type != "CPU"]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform != "cpu"]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def check_data(data_dir: str | None) -> tuple[bool, str]:
    """Whether the data root (given, default CelebA, or synthetic default) is usable."""
    import dataset  # here, once the packages it imports are known to be installed

    root = Path(data_dir) if data_dir else dataset.DEFAULT_CELEBA_DIR
    if data_dir is None and not root.exists():
        synth = dataset.DEFAULT_SYNTH_DIR
        state = "present" if (synth / "list_attr_celeba.txt").is_file() else "built on first use"
        return True, f"no CelebA at {root}; the synthetic default ({synth}) is {state}"
    try:
        index = dataset.scan(root)
    except dataset.DataError as error:
        return False, str(error)
    skipped = ", ".join(f"{n} {what}" for what, n in index.skipped.items() if n) or "none"
    return True, (
        f"CelebA at {root} ({index.files.layout} layout): {len(index.names)} labelled images; "
        f"skipped: {skipped}"
    )


def check_fid() -> str:
    """Whether evaluate.py can report the standard FID (optional: it skips it if not)."""
    import fid_inception  # here, once the packages it imports are known to be installed

    try:
        return f"the FID Inception is installed ({fid_inception.network_file()})"
    except fid_inception.InceptionMissingError as missing:
        return f"optional, evaluate.py skips it: {missing}"


def free_gb(path: Path) -> float:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser(None, __doc__.split("\n\n")[0])
    parser.add_argument(
        "--requirements",
        default=str(PROJECT_DIR / "requirements.txt"),
        help="requirements file to check against",
    )
    cli.add_data_dir(parser)
    args = parser.parse_args(argv)
    problems: list[str] = []

    def report(ok: bool, what: str, line: str) -> None:
        print(f"[{'ok' if ok else 'MISSING'}] {what}: {line}")
        if not ok:
            problems.append(f"{what}: {line}")

    python_ok = sys.version_info >= MIN_PYTHON
    report(python_ok, "python", f"{sys.version.split()[0]} (need >= 3.10)")
    packages_ok = True
    for requirement in read_requirements(Path(args.requirements)):
        ok, line = check_package(requirement)
        packages_ok &= ok
        report(ok, "package", line)
    if packages_ok:
        from quiet_keras import keras

        backend = keras.backend.backend()
        report(True, "keras", f"{keras.__version__}, backend {backend}")
        devices = accelerators(backend)
        report(True, "accelerators", ", ".join(devices) if devices else "none (CPU training)")
        data_ok, data_line = check_data(args.data_dir)
        report(data_ok, "data", data_line)
        report(True, "standard FID", check_fid())
    gb = free_gb(PROJECT_DIR / "cache")
    report(gb >= MIN_FREE_GB, "disk", f"{gb:.1f} GB free for the cache (need >= {MIN_FREE_GB})")
    if problems:
        print(f"\nNot ready: {len(problems)} problem(s):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("\nReady.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
