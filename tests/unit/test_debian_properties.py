"""Properties: the resolver's choice does not depend on index order; the ar reader
reads back what an ar writer wrote."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.aptrepo import ar_archive
from xarch.sources.debian.deb import read_ar
from xarch.sources.debian.packages import Candidate
from xarch.sources.debian.resolver import Universe, resolve


def cand(name: str, version: str, arch: str = "amd64", **fields: str) -> Candidate:
    return Candidate(name, version, arch, f"pool/{name}_{version}.deb", 1, "0" * 64, "stable", "main",
                     {key.replace("_", "-"): value for key, value in fields.items()})


INDEX = [
    cand("app", "1.0", Depends="libc (>= 2), mail | fallback, api (>= 2)", Pre_Depends="base"),
    cand("libc", "1.0"), cand("libc", "2.5"), cand("libc", "2.10"), cand("libc", "2.10", arch="all"),
    cand("base", "1", arch="all", Multi_Arch="foreign"),
    cand("mta-a", "1", Provides="mail"), cand("mta-b", "1", Provides="mail"),
    cand("fallback", "1"),
    cand("api-one", "1", Provides="api (= 1)"), cand("api-three", "1", Provides="api (= 3)"),
    cand("api-four", "1", Provides="api (= 4)"),
    cand("other-arch", "9", arch="arm64"),
]


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_resolution_does_not_depend_on_index_order(rng: random.Random) -> None:
    shuffled = list(INDEX)
    rng.shuffle(shuffled)
    chosen = resolve(Universe.build("amd64", shuffled), ["app"]).packages
    # libc: the highest version, amd64 before all; mail: first provider by name;
    # api (>= 2): the highest provided version.
    assert [(c.name, c.version, c.architecture) for c in chosen.values()] == [
        ("api-four", "1", "amd64"), ("app", "1.0", "amd64"), ("base", "1", "all"),
        ("libc", "2.10", "amd64"), ("mta-a", "1", "amd64"),
    ]


names = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789._-"), min_size=1, max_size=15)


@given(st.lists(st.tuples(names, st.binary(max_size=300)), max_size=6, unique_by=lambda m: m[0]))
def test_ar_round_trip(members: list[tuple[str, bytes]]) -> None:
    assert read_ar(ar_archive(members), "test.ar") == dict(members)
