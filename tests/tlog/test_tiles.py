"""C2SP tlog-tiles path arithmetic, tiles and entry bundles."""

from __future__ import annotations

import pytest

from gateway.tlog import merkle, tiles
from gateway.tlog.errors import MalformedTile


@pytest.mark.parametrize(
    ("index", "encoded"),
    [(0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_encode_index(index: int, encoded: str) -> None:
    assert tiles.encode_index(index) == encoded


def test_paths() -> None:
    assert tiles.tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tiles.tile_path(2, 5, 17) == "tile/2/005.p/17"
    assert tiles.entries_path(1234067, 3) == "tile/entries/x001/x234/067.p/3"
    for path in ["tile/0/x001/x234/067", "tile/2/005.p/17", "tile/entries/x001/x234/067.p/3"]:
        assert tiles.parse_tile_path(path).path() == path
    parsed = tiles.parse_tile_path("tile/entries/x001/x234/067.p/3")
    assert (parsed.level, parsed.index, parsed.width) == (None, 1234067, 3)


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/1234",
        "tile/0/x000/001",
        "tile/0/001.p/0",
        "tile/0/001.p/256",
        "tile/0/001.p/999",
        "tile/0/001.p/05",
        "tile/00/001",
        "tile/64/001",
        "tile/entries/x1/001",
        "tile/0/001/",
        "tile/-1/001",
        "tiles/0/001",
        "tile/0/00a",
        "tile/0/001.p/",
        "tile/0/x001",
    ],
)
def test_bad_paths(path: str) -> None:
    with pytest.raises(MalformedTile):
        tiles.parse_tile_path(path)


def test_spec_example_tile_counts() -> None:
    # tlog-tiles: a tree of 70,000 has 273 full level-0 tiles, a level-0 partial of width
    # 112, one full level-1 tile, a level-1 partial of width 17 and a level-2 partial of 1.
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(70000)]
    result = tiles.tiles_for(70000, hashes)
    full0 = [p for p in result if p.startswith("tile/0/") and ".p/" not in p]
    assert len(full0) == 273
    assert "tile/0/273.p/112" in result
    assert "tile/1/000" in result
    assert "tile/1/001.p/17" in result
    assert "tile/2/000.p/1" in result
    assert len(result) == 273 + 1 + 1 + 1 + 1
    assert result["tile/2/000.p/1"] == merkle.root(hashes[:65536])
    assert result["tile/1/001.p/17"][:32] == merkle.root(hashes[65536 : 65536 + 256])
    assert result["tile/0/273.p/112"] == b"".join(hashes[273 * 256 : 70000])
    assert set(tiles.tiles_for(256, hashes)) == {"tile/0/000", "tile/1/000.p/1"}
    assert tiles.tiles_for(0, hashes) == {}


def test_tiles_for_sizes_unions_partials() -> None:
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(600)]
    union = tiles.tiles_for_sizes([10, 300, 600], hashes)
    expected: dict[str, bytes] = {}
    for size in (10, 300, 600):
        expected |= tiles.tiles_for(size, hashes)
    assert union == expected
    assert "tile/0/000.p/10" in union


def test_entry_bundles_round_trip() -> None:
    entries = [b"", b"a", b"x" * 65535, *(i.to_bytes(3, "big") for i in range(300))]
    bundles = tiles.entry_bundles(entries)
    assert set(bundles) == {"tile/entries/000", "tile/entries/001.p/47"}
    assert bundles["tile/entries/000"][:5] == b"\x00\x00\x00\x01a"
    assert tiles.read_entry_bundle(bundles["tile/entries/000"]) == entries[:256]
    assert tiles.read_entry_bundle(bundles["tile/entries/001.p/47"]) == entries[256:]
    with pytest.raises(ValueError):
        tiles.entry_bundle([b"x" * 65536])


@pytest.mark.parametrize("data", [b"\x00", b"\x00\x02a", b"\x00\x01a\x00", b"\x00\x00" * 257])
def test_bad_entry_bundles(data: bytes) -> None:
    with pytest.raises(MalformedTile):
        tiles.read_entry_bundle(data)


@pytest.mark.parametrize("data", [b"", b"x" * 31, b"x" * 33, b"x" * (32 * 257)])
def test_bad_tiles(data: bytes) -> None:
    with pytest.raises(MalformedTile):
        tiles.read_tile(data)
