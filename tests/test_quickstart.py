"""scripts/quickstart.sh prints each stage's elapsed seconds at its end (measured by the script).

The script runs for real in a copy of the repository's layout whose python, pip, data download
and ``camlkit`` are stand-ins (no install, no training): the stand-in ``camlkit train`` writes a
log.csv whose last row says its loop took 1.7 s, then waits 2 s.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PYTHON = f"""#!/usr/bin/env bash
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then exit 0; fi  # install: nothing to do
case "$1" in data_scripts/*) exit 0;; esac            # the data: already there
exec {sys.executable} "$@"
"""

CAMLKIT = """#!/usr/bin/env bash
while [ $# -gt 0 ]; do [ "$1" = "--out" ] && out=$2; shift; done
mkdir -p "$out"
printf 'iteration,L,seconds\\n9,0.5,1.2\\n19,0.4,1.7\\n' > "$out/log.csv"
sleep 2
"""


def _repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "quickstart.sh", repo / "scripts" / "quickstart.sh")
    shutil.copy(ROOT / "scripts" / "torch.txt", repo / "scripts" / "torch.txt")  # the one torch pin
    (repo / "scripts" / "torch_index.sh").write_text("echo ''\n")
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("python", PYTHON), ("camlkit", CAMLKIT)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return repo


def test_quickstart_prints_the_elapsed_time_of_each_stage(tmp_path):
    repo = _repo(tmp_path)
    env = {**os.environ, "PRESET": "smoke", "CAMLKIT_DATA": str(tmp_path / "LA")}
    out = subprocess.run(["bash", str(repo / "scripts" / "quickstart.sh")], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    start = lines.index("quickstart: elapsed seconds per stage (measured by this script):")
    stages = {line.split()[0]: int(line.split()[1]) for line in lines[start + 1 : start + 6]}
    assert list(stages) == ["install", "data", "training", "evaluation", "total"]
    assert stages["training"] == 1  # log.csv's last "seconds", 1.7, in whole seconds
    assert stages["evaluation"] >= 0
    assert stages["total"] >= sum(v for k, v in stages.items() if k != "total")
    assert stages["training"] + stages["evaluation"] >= 2  # the stand-in's command took 2 s
