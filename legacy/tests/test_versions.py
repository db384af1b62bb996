"""requirements.txt pins the byte-for-byte target: the installed packages must be those versions."""

import glob
import importlib
import importlib.metadata
import os
import re
import sys
import unittest

REQUIREMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "requirements.txt")


def pins():
    with open(REQUIREMENTS) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, version = line.partition("==")
                yield name, version


def installed_version(name):
    """The installed version of a distribution, also for the Debian packages
    setup.sh links into .pydeps without their metadata (python3-redis reports
    redis.__version__ as 99.99.99; its egg-info folder has the real one)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
    module = importlib.import_module(name.lower())
    site = os.path.dirname(os.path.dirname(os.path.realpath(module.__file__)))
    for info in glob.glob(os.path.join(site, f"{name.lower()}-*.egg-info")):
        m = re.match(rf"{name.lower()}-(.+?)(-py.*)?\.egg-info$", os.path.basename(info))
        if m:
            return m.group(1)
    return None


class TestVersions(unittest.TestCase):
    def test_python_is_3_11(self):
        # json, repr() and the Unicode tables compat reproduces are CPython 3.11's.
        self.assertEqual(sys.version_info[:2], (3, 11))

    def test_installed_versions_match_the_pins(self):
        names = []
        for name, version in pins():
            names.append(name)
            with self.subTest(package=name):
                self.assertTrue(version, f"{name} is not pinned with ==")
                self.assertEqual(installed_version(name), version)
        for required in ("Flask", "Werkzeug", "itsdangerous", "boto3", "redis", "gunicorn"):
            self.assertIn(required, names)


if __name__ == "__main__":
    unittest.main()
