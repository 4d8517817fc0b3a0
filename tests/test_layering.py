"""The stages import in one direction (docs/DESIGN.md §8): the import-linter contract of pyproject.toml holds."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contract_is_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_conversion_never_imports_hardware():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tcja_deploy" / "conversion").rglob("*.py")
                 if "tcja_deploy.hardware" in p.read_text().replace("tcja_deploy.hardware.verify.lava_check", "")
                 and any(line.lstrip().startswith(("import tcja_deploy.hardware", "from tcja_deploy.hardware"))
                         for line in p.read_text().splitlines())]
    assert offenders == []
