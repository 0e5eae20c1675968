"""mkdocs hook: the configuration reference, generated from raynas/tune/options.py."""

from __future__ import annotations

from mkdocs.structure.files import File

from raynas.tune.options_reference import markdown


def on_files(files, config):
    files.append(File.generated(config, "configuration.md", content=markdown()))
    return files
