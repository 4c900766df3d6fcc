"""Only what setup.cfg cannot say: the start-up file `semantic_iqa_autoload.pth` goes to the root
of the wheel (site-packages), where Python's `site` module runs it; see _semantic_iqa_autoload.py."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

STARTUP_FILE = "semantic_iqa_autoload.pth"


class BuildPyWithStartupFile(build_py):
    def run(self) -> None:
        super().run()
        # In the wheel's RECORD like every other file, so `pip uninstall` removes it.
        self.copy_file(str(Path(__file__).parent / STARTUP_FILE), str(Path(self.build_lib) / STARTUP_FILE))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / STARTUP_FILE)]


setup(cmdclass={"build_py": BuildPyWithStartupFile})
