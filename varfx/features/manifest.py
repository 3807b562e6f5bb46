"""The annotations manifest (``varfx ingest --annotations MANIFEST``).

A tab-separated file with a header line; columns (case-insensitive, any order):

- ``name`` (required): the feature's name, unique; stored columns are ``NAME.COLUMN``;
- ``path`` (required; empty or ``-`` for kinds that need no file, e.g. ``architecture``):
  relative paths are resolved against the manifest's folder;
- ``kind`` (optional): a registered feature-source name (``bigwig``, ``bed``, ``table``,
  ``architecture``, ``fasta`` or a plugin's); empty: inferred from the file
  (each source's ``sniff``: bigWig magic bytes, ``.bed[.gz]``, FASTA, table header);
- ``window`` (optional): the window in bp for this entry's per-variant summaries
  (default: ``--feature-window``); per-base tracks always use ``--feature-window``;
- ``options`` (optional): ``KEY=VALUE`` pairs separated by ``;`` or ``,``
  (e.g. ``track=true;overlap=false``; a comma followed by no ``KEY=`` belongs to the
  value: ``columns=freq,maf``), checked against the source's options.

Blank lines and lines starting with ``#`` are skipped.  Every error names the manifest
and its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from varfx.errors import UserError

COLUMNS = ("name", "path", "kind", "window", "options")
_NAME_OK = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


@dataclass
class ManifestEntry:
    """One feature input: a name, a feature-source kind, a file (or None), options."""

    name: str
    kind: str
    path: Path | None = None
    window: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    line: int | None = None
    manifest: Path | None = None

    @property
    def where(self) -> str:
        """Where this entry came from, for messages."""
        if self.manifest is not None:
            return f"{self.manifest}, line {self.line}" if self.line else str(self.manifest)
        return f"feature {self.name!r} ({self.kind})"

    def source_class(self) -> type:
        from varfx.plugins import get_feature_sources

        table = get_feature_sources()
        if self.kind not in table:
            raise UserError(f"{self.where}: unknown feature kind {self.kind!r} "
                            f"(available: {', '.join(sorted(table)) or 'none'})")
        return table[self.kind]

    def source(self):
        """An instance of the entry's feature source, with its options."""
        cls = self.source_class()
        try:
            return cls(**self.options)
        except UserError as exc:
            raise UserError(f"{self.where}: {exc}") from None

    def record(self) -> dict:
        """A JSON-serialisable description (for provenance)."""
        return {"name": self.name, "kind": self.kind, "path": str(self.path) if self.path else None,
                "window": self.window, "options": dict(self.options)}


def infer_kind(path) -> str | None:
    """The first registered feature source whose ``sniff`` accepts ``path`` (None if none)."""
    from varfx.plugins import get_feature_sources

    for name, cls in get_feature_sources().items():
        sniff = getattr(cls, "sniff", None)
        if sniff is None:
            continue
        try:
            if sniff(path):
                return name
        except Exception:  # noqa: BLE001 - a sniffer must not break inference
            continue
    return None


def _split(line: str, tab: bool) -> list[str]:
    return [f.strip() for f in (line.rstrip("\r\n").split("\t") if tab else line.split())]


def _option_pairs(text: str) -> list[str]:
    """``"a=1;b=x,y, c=2"`` -> ``["a=1", "b=x,y", "c=2"]``: pairs are separated by ``;`` or
    by ``,`` when what follows the comma is a new ``KEY=``."""
    pairs: list[str] = []
    for chunk in text.split(";"):
        for piece in chunk.split(","):
            if pairs and "=" not in piece and pairs[-1] is not None:
                pairs[-1] += "," + piece
            else:
                pairs.append(piece)
        pairs.append(None)  # a ';' always ends a pair
    return [p.strip() for p in pairs if p is not None and p.strip()]


def read_manifest(path) -> list[ManifestEntry]:
    """Parse and check a manifest: names, files (existence), kinds, windows, options."""
    from varfx.plugins import get_feature_sources

    path = Path(path)
    if not path.is_file():
        raise UserError("no such annotations manifest", path=path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError("not a text manifest (expected UTF-8, tab-separated: name, path, kind, window)",
                        path=path) from None
    base = path.resolve().parent
    header = None
    tab = True
    entries: list[ManifestEntry] = []
    seen: dict[str, int] = {}
    sources = get_feature_sources()
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if header is None:
            tab = "\t" in line
            header = [h.lower() for h in _split(line, tab)]
            for req in ("name", "path"):
                if req not in header:
                    raise UserError(f"expected a header with columns name, path (optional kind, window, options), "
                                    f"found {' '.join(header) or 'nothing'}", path=path, line=lineno)
            unknown = [h for h in header if h not in COLUMNS]
            if unknown:
                raise UserError(f"unknown column {unknown[0]!r}: expected {', '.join(COLUMNS)}", path=path, line=lineno)
            continue
        fields = _split(line, tab)
        if len(fields) > len(header):
            raise UserError(f"expected at most {len(header)} tab-separated fields as in the header, found {len(fields)}",
                            path=path, line=lineno)
        rec = dict(zip(header, fields + [""] * (len(header) - len(fields))))
        name = rec["name"]
        if not name:
            raise UserError("empty name", path=path, line=lineno, column="name")
        if not _NAME_OK.match(name):
            raise UserError(f"name {name!r}: expected letters, digits and _ . + - only", path=path, line=lineno,
                            column="name")
        if name in seen:
            raise UserError(f"name {name!r} already used on line {seen[name]}: expected unique names",
                            path=path, line=lineno, column="name")
        seen[name] = lineno
        raw_path = rec.get("path", "")
        fpath = None
        if raw_path and raw_path != "-":
            fpath = Path(raw_path).expanduser()
            if not fpath.is_absolute():
                fpath = base / fpath
            if not fpath.exists():
                raise UserError(f"no such file {raw_path!r} (resolved to {fpath})", path=path, line=lineno,
                                column="path")
        kind = rec.get("kind", "").strip().lower()
        if not kind:
            if fpath is None:
                raise UserError("no path and no kind: expected a file, or a kind that needs none (architecture)",
                                path=path, line=lineno)
            kind = infer_kind(fpath)
            if kind is None:
                raise UserError(f"cannot tell the kind of {raw_path!r} from its contents: expected one of "
                                f"{', '.join(sources)} in the kind column", path=path, line=lineno, column="path")
        if kind not in sources:
            raise UserError(f"unknown kind {kind!r} (available: {', '.join(sorted(sources)) or 'none'})",
                            path=path, line=lineno, column="kind")
        cls = sources[kind]
        if getattr(cls, "needs_path", True) and fpath is None:
            raise UserError(f"kind {kind!r} needs a file in the path column", path=path, line=lineno, column="path")
        window = None
        wtok = rec.get("window", "")
        if wtok and wtok != "-":
            try:
                window = int(wtok)
            except ValueError:
                window = 0
            if window <= 0:
                raise UserError(f"expected a positive whole number of bp, found {wtok!r}", path=path, line=lineno,
                                column="window")
        pairs = _option_pairs(rec.get("options", ""))
        try:
            options = cls.parse_options(pairs)
            cls(**options)  # options that only the constructor can check
        except UserError as exc:
            raise UserError(str(exc), path=path, line=lineno, column="options") from None
        entries.append(ManifestEntry(name=name, kind=kind, path=fpath, window=window, options=options, line=lineno,
                                     manifest=path))
    if header is None:
        raise UserError("empty manifest: expected a header (name, path, kind, window) and one line per feature",
                        path=path)
    return entries


def entries_for_ingest(annotations=None, fasta=None) -> list[ManifestEntry]:
    """The feature entries for ``varfx ingest --annotations MANIFEST --fasta FA``.

    ``--fasta`` adds an entry named ``sequence`` of kind ``fasta`` (checked for its
    ``.fai`` here, so a missing index fails before any work).  At most one FASTA in all.
    """
    entries = read_manifest(annotations) if annotations is not None else []
    if fasta is not None:
        from .sequence import open_fasta

        fasta = Path(fasta)
        open_fasta(fasta).close()
        clash = [e for e in entries if e.name == "sequence" or e.kind == "fasta"]
        if clash:
            raise UserError(f"{clash[0].where}: --fasta {fasta} adds the sequence feature, and the manifest has "
                            f"{clash[0].name!r} ({clash[0].kind}) too: expected one FASTA")
        entries.append(ManifestEntry(name="sequence", kind="fasta", path=fasta))
    return entries
