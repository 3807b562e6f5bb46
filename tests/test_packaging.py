"""The demo's data ships in the wheel, so `varfx demo` (the README's main job) and
`varfx.testing` work from a plain `pip install`, not only from a source checkout."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from varfx.testing.data import EXAMPLE_DATA

REPO = Path(__file__).resolve().parents[1]


def test_example_data_is_package_data():
    """The demo looks for its data inside the package, where package_data puts it."""
    from varfx.stages.demo import find_example_data

    assert find_example_data() == EXAMPLE_DATA
    assert EXAMPLE_DATA.parent == Path(__import__("varfx").__file__).resolve().parent


@pytest.mark.slow
def test_wheel_carries_the_example_data(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("varfx-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    from varfx.stages.demo import REQUIRED

    for f in ("ukb_height_chr22.fastGWA.gz", *REQUIRED):
        assert f"varfx/example_data/{f}" in names
