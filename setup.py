"""Only what setup.cfg cannot declare: the start-up ``.pth`` file of the lm-eval hook.

A ``.pth`` file must sit at the root of site-packages. ``build_py`` copies it
into the wheel root for regular installs; PEP 660 editable installs do not run
that copy, so ``editable_wheel`` places it into the unpacked editable wheel.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "executable_cf_lmeval.pth"  # sorts after "__editable__", so editable paths exist when it runs
HERE = Path(__file__).resolve().parent


class BuildPyWithPth(build_py):
    def run(self):
        super().run()
        shutil.copy2(HERE / PTH, Path(self.build_lib) / PTH)


class EditableWheelWithPth(editable_wheel):
    def _run_build_commands(self, dist_name, unpacked_wheel, build_lib, tmp_dir):
        files, mapping = super()._run_build_commands(dist_name, unpacked_wheel, build_lib, tmp_dir)
        shutil.copy2(HERE / PTH, Path(unpacked_wheel) / PTH)
        return files, mapping


setup(cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth})
