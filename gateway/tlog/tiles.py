"""C2SP tlog-tiles v0.1.0: tile paths, hash tiles and entry bundles (tile height 8).

* Paths (§"Merkle Tree"): ``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]``; ``N`` is
  written as zero-padded 3-digit groups, all but the last prefixed with ``x``
  (1234067 → ``x001/x234/067``); ``W`` (1 to 255) is present only for partial tiles.
* Tile ``N`` at level ``L`` holds, for ``i`` in ``0..255``,
  ``MTH(D[(N*256 + i) * 256**L : (N*256 + i + 1) * 256**L])``; a tree of size ``s`` has
  ``floor(s / 256**L)`` hashes at level ``L``, hence a partial tile of width
  ``floor(s / 256**L) mod 256`` when that is non-zero.
* Entry bundles (§"Log entries"): each entry is a big-endian uint16 length then the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.tlog.errors import MalformedTile
from gateway.tlog.merkle import HASH_SIZE, root

__all__ = [
    "MAX_ENTRY_SIZE",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "MalformedTile",
    "TilePath",
    "encode_index",
    "entries_path",
    "entry_bundle",
    "entry_bundles",
    "entry_bundles_for_sizes",
    "level_hashes",
    "parse_tile_path",
    "read_entry_bundle",
    "read_tile",
    "tile_path",
    "tiles_for",
    "tiles_for_sizes",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF

_PATH = re.compile(
    r"tile/(?P<level>entries|0|[1-9][0-9]?)/(?P<index>(?:x[0-9]{3}/)*[0-9]{3})"
    r"(?:\.p/(?P<width>[1-9][0-9]{0,2}))?"
)


def encode_index(index: int) -> str:
    """Tile index as 3-digit path elements, all but the last prefixed with ``x``."""
    if index < 0:
        raise ValueError(f"negative tile index {index}")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def _suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} outside 1..{TILE_WIDTH}")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]`` for a hash tile."""
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"tile level {level} outside 0..{MAX_LEVEL}")
    return f"tile/{level}/{encode_index(index)}{_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """``tile/entries/<N>[.p/<W>]`` for an entry bundle."""
    return f"tile/entries/{encode_index(index)}{_suffix(width)}"


@dataclass(frozen=True)
class TilePath:
    """A parsed tile path: ``level`` is ``None`` for entry bundles; full tiles have width 256."""

    level: int | None
    index: int
    width: int

    @property
    def is_entries(self) -> bool:
        """Whether this is an entry bundle rather than a hash tile."""
        return self.level is None

    @property
    def start(self) -> int:
        """First index covered at this tile's own level (``index * 256``)."""
        return self.index * TILE_WIDTH

    def path(self) -> str:
        """The canonical path string."""
        if self.level is None:
            return entries_path(self.index, self.width)
        return tile_path(self.level, self.index, self.width)


def parse_tile_path(path: str) -> TilePath:
    """Parse a canonical tile or entry-bundle path; raise :class:`MalformedTile`."""
    m = _PATH.fullmatch(path)
    if m is None:
        raise MalformedTile(f"malformed tile path {path!r}")
    level_text, index_text, width_text = m.group("level", "index", "width")
    level = None if level_text == "entries" else int(level_text)
    width = TILE_WIDTH if width_text is None else int(width_text)
    index = int(index_text.replace("x", "").replace("/", ""))
    if level is not None and level > MAX_LEVEL:
        raise MalformedTile(f"malformed tile path {path!r}: level above {MAX_LEVEL}")
    if width_text is not None and width >= TILE_WIDTH:
        raise MalformedTile(f"malformed tile path {path!r}: partial width above 255")
    parsed = TilePath(level, index, width)
    if parsed.path() != path:
        raise MalformedTile(f"malformed tile path {path!r}: not canonical")
    return parsed


def level_hashes(size: int, leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Hashes stored in tiles for a tree of ``size``: ``floor(size / 256**L)`` at level ``L``."""
    if not 0 <= size <= len(leaf_hashes):
        raise ValueError(f"tree size {size} exceeds the {len(leaf_hashes)} leaf hashes")
    levels = [list(leaf_hashes[:size])]
    while len(levels[-1]) >= TILE_WIDTH:
        below = levels[-1]
        levels.append(
            [
                root(below[k : k + TILE_WIDTH])
                for k in range(0, len(below) - TILE_WIDTH + 1, TILE_WIDTH)
            ]
        )
    return levels


def tiles_for(size: int, leaf_hashes: Sequence[bytes]) -> dict[str, bytes]:
    """Every full tile and every partial tile of a tree of ``size``, keyed by path."""
    return tiles_for_sizes([size], leaf_hashes)


def tiles_for_sizes(sizes: Sequence[int], leaf_hashes: Sequence[bytes]) -> dict[str, bytes]:
    """Union of :func:`tiles_for` over ``sizes`` (the partial tiles of every checkpoint)."""
    if not sizes:
        return {}
    levels = level_hashes(max(sizes), leaf_hashes)
    tiles: dict[str, bytes] = {}
    for level, hashes in enumerate(levels):
        for start in range(0, len(hashes) - TILE_WIDTH + 1, TILE_WIDTH):
            tiles[tile_path(level, start // TILE_WIDTH)] = b"".join(
                hashes[start : start + TILE_WIDTH]
            )
    for size in sorted(set(sizes)):
        for level, hashes in enumerate(levels):
            count = size >> (TILE_HEIGHT * level)
            width = count % TILE_WIDTH
            if width:
                start = count - width
                path = tile_path(level, start // TILE_WIDTH, width)
                tiles[path] = b"".join(hashes[start:count])
    return tiles


def entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Encode up to 256 entries as uint16-big-endian-length-prefixed records."""
    if len(entries) > TILE_WIDTH:
        raise ValueError(f"an entry bundle holds at most {TILE_WIDTH} entries")
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise ValueError(f"entry of {len(entry)} bytes exceeds the uint16 length prefix")
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


def entry_bundles(entries: Sequence[bytes]) -> dict[str, bytes]:
    """Every full entry bundle and the final partial bundle of ``entries``, keyed by path."""
    return entry_bundles_for_sizes([len(entries)], entries)


def entry_bundles_for_sizes(sizes: Sequence[int], entries: Sequence[bytes]) -> dict[str, bytes]:
    """Union of :func:`entry_bundles` of ``entries[:size]`` over ``sizes``."""
    if not sizes:
        return {}
    if max(sizes) > len(entries):
        raise ValueError(f"tree size {max(sizes)} exceeds the {len(entries)} entries")
    bundles: dict[str, bytes] = {}
    for start in range(0, max(sizes) - TILE_WIDTH + 1, TILE_WIDTH):
        bundles[entries_path(start // TILE_WIDTH)] = entry_bundle(
            entries[start : start + TILE_WIDTH]
        )
    for size in sorted(set(sizes)):
        width = size % TILE_WIDTH
        if width:
            start = size - width
            bundles[entries_path(start // TILE_WIDTH, width)] = entry_bundle(entries[start:size])
    return bundles


def read_entry_bundle(data: bytes) -> list[bytes]:
    """Decode an entry bundle; raise :class:`MalformedTile` on truncation or > 256 entries."""
    entries: list[bytes] = []
    offset, end = 0, len(data)
    while offset < end:
        if offset + 2 > end:
            raise MalformedTile(f"malformed entry bundle: truncated length at byte {offset}")
        length = (data[offset] << 8) | data[offset + 1]
        offset += 2
        if offset + length > end:
            raise MalformedTile(
                f"malformed entry bundle: entry {len(entries)} truncated at byte {offset}"
            )
        entries.append(bytes(data[offset : offset + length]))
        offset += length
        if len(entries) > TILE_WIDTH:
            raise MalformedTile(f"malformed entry bundle: more than {TILE_WIDTH} entries")
    return entries


def read_tile(data: bytes) -> list[bytes]:
    """Split a hash tile into its 32-byte hashes; raise :class:`MalformedTile` if mis-sized."""
    if len(data) % HASH_SIZE or not 0 < len(data) <= TILE_WIDTH * HASH_SIZE:
        raise MalformedTile(f"malformed tile: {len(data)} bytes is not 1..256 hashes")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
