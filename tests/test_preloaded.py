"""The test relays and commands are forked from a process that imported Cove once (cove.testing.PreloadedCove).

That is only the command as deployed if nothing it preloads reads a setting on import: such a value would be the
fork server's, not the one the test gave the relay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cove.testing import _PRELOAD, run_cove

RECORD_READS = """
import importlib, json, os, sys
from collections.abc import MutableMapping

real, read = os.environ, set()


class Recording(MutableMapping):
    def __getitem__(self, key):
        read.add(key)
        return real[key]

    def __contains__(self, key):
        read.add(key)
        return key in real

    def __setitem__(self, key, value):
        real[key] = value

    def __delitem__(self, key):
        del real[key]

    def __iter__(self):
        return iter(real)

    def __len__(self):
        return len(real)


os.environ = Recording()
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(key for key in read if key.startswith("COVE_"))))
"""


def test_the_preloaded_modules_read_no_cove_setting_on_import() -> None:
    done = subprocess.run(
        [sys.executable, "-c", RECORD_READS, *_PRELOAD], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize("args", [["whoami"], ["nosuch"], ["--help"]])
def test_a_forked_command_answers_as_a_fresh_interpreter_does(args: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "COVE_HOME": str(tmp_path / "home"), "COVE_PROFILE": "someone-else"}
    fresh = subprocess.run(
        [sys.executable, "-m", "cove", *args], env=env, input="", capture_output=True, text=True, timeout=60
    )
    forked = run_cove(args, env, input="")
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
