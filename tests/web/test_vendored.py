"""Vendored front-end files are the ones recorded, each package with its licence."""

from __future__ import annotations

import hashlib
import re

from opsloom.web import static_dir


def test_vendored__every_file_matches_its_recorded_checksum() -> None:
    vendor = static_dir() / "vendor"
    record = (vendor / "VENDORED.md").read_text(encoding="utf-8")
    listed = dict(
        (path, digest) for digest, path in re.findall(r"^([0-9a-f]{64})  (\S+)$", record, re.M)
    )
    present = {
        str(p.relative_to(vendor)) for p in vendor.rglob("*") if p.is_file() and p.suffix != ".md"
    }
    assert present == set(listed), "VENDORED.md must list every vendored file"
    for path, digest in listed.items():
        assert hashlib.sha256((vendor / path).read_bytes()).hexdigest() == digest, path
    packages = {path.split("/")[0] for path in listed}
    assert all(f"{package}/LICENSE" in listed for package in packages)
