"""MkDocs hook: the report figures committed under results/ join the site at their repository paths.

A page links them as ``results/<...>.png`` (relative to the docs root), so a figure that a report regenerates is
shown as it is now, without a copy in docs/. Run folders (``runs/``) hold no figures and are skipped.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File


def on_files(files, config):
    root = Path(config.config_file_path).resolve().parent
    for png in sorted((root / "results").glob("**/*.png")):
        rel = png.relative_to(root)
        if "runs" in rel.parts:
            continue
        files.append(File(rel.as_posix(), str(root), config.site_dir, config.use_directory_urls))
    return files
