"""Finding the files to tail: glob patterns of the file inputs and Docker's container logs."""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Iterator
from pathlib import Path

from collector.tail.docker import container_logs, container_source
from collector.tail.reader import Source
from collector.tail.settings import FileInput, TailSettings


def file_source(cfg: FileInput, path: str) -> Source:
    """The configured service, else the directory's name (/var/log/nginx/access.log -> nginx)."""
    service = cfg.service or Path(path).parent.name or "unknown"
    return Source(service=service, fmt=cfg.format, multiline=cfg.multiline)


def excluded(patterns: list[str], source: Source) -> bool:
    return any(re.fullmatch(p, source.service) or re.fullmatch(p, source.node or "") for p in patterns)


def matches(settings: TailSettings, docker_sources: dict[Path, Source]) -> Iterator[tuple[str, FileInput | None,
                                                                                          Source | None]]:
    """(path, its file input or None for a container log, the container's Source) for every current match.

    `docker_sources` caches each container's metadata (read once, when it is first seen); containers
    whose directory is gone are dropped from it."""
    for cfg in settings.inputs:
        for pattern in cfg.paths:
            for path in sorted(glob.glob(pattern)):
                name = os.path.basename(path)
                if any(fnmatch.fnmatch(name, ex) for ex in cfg.exclude) or not os.path.isfile(path):
                    continue
                yield path, cfg, None
    if settings.docker_root is not None:
        present = set()
        for directory, log in container_logs(settings.docker_root):
            present.add(directory)
            source = docker_sources.get(directory)
            if source is None:
                source = container_source(directory, settings.docker_format, settings.docker_multiline,
                                          settings.service_map)
                if source is None:
                    continue  # config.v2.json not written yet: the next scan
                docker_sources[directory] = source
            if excluded(settings.docker_exclude, source):
                continue
            yield str(log), None, source
        for gone in set(docker_sources) - present:
            del docker_sources[gone]
