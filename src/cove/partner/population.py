"""A seeded synthetic world for the partner's analytics: people, their handsets, both networks, a social graph.

No public data set joins a social network's accounts with a messenger's, and none ships offline with contact books
(SNAP's ego-Facebook, McAuley and Leskovec, NIPS 2012, has friendships only, and no PyPI package ships it), so
linking and suggestions are measured on generated data whose ground truth is known. Each person has one handset
(an E.164 number, a Zipf-distributed device model out of 300, an OS version tied to the model's family, a vendor
device id that each app sees 65% of the time); 70% of the parent's users also use the messenger; the messenger's
copy of a person is perturbed the way real records drift (no number, a 1-digit typo, an OS upgrade, a new
handset); and two confounders make an exact match wrong: a *recycled* number now held by another parent user, and
a *shared family handset* whose vendor id and model belong to another parent user. :meth:`WorldSpec.harder` adds,
on top of those, *changed numbers* (the messenger has a number the parent never saw, a quarter of them recycled
from another parent user, whose stale number the parent still holds), more shared handsets, and *two devices*: the
person runs the parent's app on one handset and the messenger on a second one of their own, so both apps see a
vendor id, but not the same one (the messenger keeps the person's number). The parent's friendships come
from planted, overlapping communities with a heavy-tailed degree distribution (:func:`_friendships`), so
friends-of-friends scores have something to find; contact books, blocks and birth years complete what the parent holds.
``accounts`` keeps the answer key: which parent user each messenger account is, and its confounder.

Everything is vectorised numpy/pyarrow: a million people take seconds, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Mobile number ranges: (calling code, first national number, last national number, share of people). The
# ranges are disjoint, so numbers drawn without replacement are unique across the world.
PHONE_RANGES: tuple[tuple[int, int, int, float], ...] = (
    (1, 2_122_000_000, 2_129_999_999, 0.10),  # US, New York 212
    (1, 4_152_000_000, 4_159_999_999, 0.10),  # US, San Francisco 415
    (1, 7_132_000_000, 7_139_999_999, 0.10),  # US, Houston 713
    (44, 7_100_000_000, 7_999_999_999, 0.15),  # UK mobiles 07xxx
    (49, 1_500_000_000, 1_799_999_999, 0.15),  # Germany 015x-017x
    (91, 6_000_000_000, 9_999_999_999, 0.25),  # India
    (55, 11_900_000_000, 11_999_999_999, 0.15),  # Brazil, São Paulo mobiles
)
SUBSCRIBER_DIGITS = 7  # typos land in the last digits, never in the calling code or area

ANDROID_VERSIONS = ("10", "11", "12", "13", "14", "15")
IOS_VERSIONS = ("15.8", "16.7", "17.5", "17.6", "18.1", "18.3")
ANDROID_BRANDS = ("samsung SM-A", "samsung SM-G", "Xiaomi 2201", "Redmi Note ", "Pixel ", "moto g", "OnePlus ")

FIRST_NAMES = [
    "Ada",
    "Ama",
    "Ana",
    "Ben",
    "Chen",
    "Dara",
    "Eli",
    "Emma",
    "Farah",
    "Hana",
    "Ivan",
    "Jae",
    "Jon",
    "Kai",
    "Lara",
    "Leo",
    "Lin",
    "Luca",
    "Maya",
    "Mei",
    "Mia",
    "Nia",
    "Noah",
    "Omar",
    "Priya",
    "Ravi",
    "Rosa",
    "Sam",
    "Sara",
    "Tariq",
    "Tom",
    "Una",
    "Vera",
    "Wen",
    "Yara",
    "Yusuf",
    "Zoe",
]
LAST_NAMES = [
    "Adeyemi",
    "Alves",
    "Bauer",
    "Chen",
    "Costa",
    "Das",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Gupta",
    "Haddad",
    "Ito",
    "Jansen",
    "Khan",
    "Kim",
    "Kowalski",
    "Lee",
    "Lopez",
    "Martin",
    "Meyer",
    "Moreau",
    "Nakamura",
    "Nguyen",
    "Okafor",
    "Patel",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Tanaka",
    "Wang",
]


@dataclass(frozen=True)
class WorldSpec:
    """Sizes and rates of a generated world; the defaults give bench/partner.py's world."""

    users: int = 10_000  # parent-network users
    accounts: int | None = None  # messenger accounts (default: as many as users)
    on_both: float = 0.70  # share of parent users who also use the messenger
    vendor_id_seen: float = 0.65  # per side: the app can read the vendor device id
    models: int = 300
    model_zipf: float = 1.1
    ios_share: float = 0.3  # of device models
    # The messenger copy of a person (shares of all accounts; the phone and device states are exclusive).
    no_phone: float = 0.25
    typo: float = 0.06  # 8% of those with a number: one digit changed or two adjacent digits swapped
    recycled: float = 0.03  # the number now belongs to another parent user
    new_device: float = 0.10  # another handset, vendor id not seen
    shared_handset: float = 0.02  # another parent user's handset: their vendor id, model and OS
    os_upgrade: float = 0.20  # of the remaining accounts: same handset, another OS version
    changed_number: float = 0.0  # a number the parent does not have for this person (exclusive of the above)
    changed_recycled: float = 0.25  # of changed numbers: another parent user's (stale) number, not a fresh one
    two_devices: float = 0.0  # the messenger on a second handset of the person's: its own vendor id and model
    parent_phone: float = 1.0  # share of parent users who gave the parent their number
    # The parent's social graph (mean_degree 0: none, nor contact books or blocks).
    mean_degree: float = 40.0  # target; neighbours' overlapping groups share friendships, so ~12% fewer result
    degree_sigma: float = 0.7  # lognormal spread of degrees
    max_degree: int = 5_000
    friends_per_group: float = 12.0  # friends a user has in each group they belong to
    group_sizes: tuple[int, int] = (5, 50)  # Dunbar's layers, from close family to 50
    locality: float = 100.0  # how far along the ring (in users) a user's other groups lie
    uploaders: float = 0.4  # users who uploaded their contact book
    friends_in_book: float = 0.6  # of an uploader's friends, the share in their book
    non_users_in_book: float = 8.0  # mean count of numbers of people on neither network
    messenger_only_in_book: float = 2.0  # mean count of messenger-only people
    blockers: float = 0.01
    minors: float = 0.06
    year: int = field(default_factory=lambda: date.today().year)

    @property
    def messenger_accounts(self) -> int:
        return self.users if self.accounts is None else self.accounts

    @classmethod
    def harder(cls, **overrides: Any) -> WorldSpec:
        """The harder population of issue 17: 20 % changed numbers, 10 % shared handsets, 5 % two devices."""
        return cls(**{"changed_number": 0.20, "shared_handset": 0.10, "two_devices": 0.05, **overrides})


@dataclass(frozen=True)
class World:
    """What the generator returns; ``accounts`` keeps the ground truth and the confounder of every account.

    - ``users``: user_id, name, phone_e164, device_model, os_name, os_version, vendor_device_id, birth_year
    - ``accounts``: subject (the messenger's pseudonym for the partner), user_id (the true parent user, null for
      messenger-only people), phone_e164, device_model, os_name, os_version, vendor_device_id, and booleans
      no_phone, typo, recycled, changed_number, new_device, shared_handset, two_devices, os_upgrade (the
      answer key: a recycled changed number is both changed_number and recycled)
    - ``friendships`` (a < b), ``contact_uploads`` (owner, phone_e164), ``blocks`` (blocker, blocked)
    """

    users: pa.Table
    accounts: pa.Table
    friendships: pa.Table
    contact_uploads: pa.Table
    blocks: pa.Table


@dataclass(frozen=True)
class _Handsets:
    """Device catalogue lookups: model names, each model's family and OS range, and the OS version strings."""

    model_names: np.ndarray
    model_ios: np.ndarray  # bool per model
    model_os_base: np.ndarray  # index into versions of the model's oldest OS
    model_p: np.ndarray  # Zipf popularity
    versions: np.ndarray  # android versions then iOS versions
    family_last: np.ndarray  # per model: index of the family's newest version


def _catalogue(spec: WorldSpec, rng: np.random.Generator) -> _Handsets:
    """``spec.models`` device models, each of one family and with a first OS version, Zipf-popular."""
    ranks = np.arange(1, spec.models + 1)
    popularity = ranks ** -float(spec.model_zipf)
    is_ios = rng.random(spec.models) < spec.ios_share
    numbers = rng.permutation(np.arange(100, 100 + spec.models))
    # One name per model (a loop over models, not rows); names stay unique across both families.
    android = np.array([f"{ANDROID_BRANDS[n % len(ANDROID_BRANDS)]}{n}" for n in numbers])
    ios = np.array([f"iPhone{n // 10},{n % 10 + 1}" for n in numbers])
    n_android = len(ANDROID_VERSIONS)
    generation = rng.integers(0, 4, spec.models)  # newer models start on a newer OS
    base = np.where(is_ios, n_android + np.minimum(generation, len(IOS_VERSIONS) - 2), np.minimum(generation, 4))
    last = np.where(is_ios, n_android + len(IOS_VERSIONS) - 1, n_android - 1)
    return _Handsets(
        model_names=np.where(is_ios, ios, android),
        model_ios=is_ios,
        model_os_base=base,
        model_p=popularity / popularity.sum(),
        versions=np.array(ANDROID_VERSIONS + IOS_VERSIONS),
        family_last=last,
    )


def _draw_handsets(cat: _Handsets, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(model index, OS version index) of ``n`` handsets: Zipf models, an OS at or a little past the model's."""
    model = rng.choice(len(cat.model_p), size=n, p=cat.model_p)
    os_index = np.minimum(cat.model_os_base[model] + rng.integers(0, 3, n), cat.family_last[model])
    return model, os_index


def _unique_phones(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct E.164 numbers as int64 (country code then national number), shuffled across countries."""
    shares = np.array([r[3] for r in PHONE_RANGES])
    counts = rng.multinomial(n, shares / shares.sum())
    parts = []
    for (code, lo, hi, _), k in zip(PHONE_RANGES, counts, strict=True):
        national = lo + rng.choice(hi - lo + 1, size=k, replace=False)
        parts.append(code * 10 ** len(str(hi)) + national)
    return rng.permutation(np.concatenate(parts)).astype(np.int64)


def _with_typo(phones: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One digit of the subscriber part changed, or two adjacent ones swapped (a substitution when equal)."""
    n = len(phones)
    pos = 10 ** rng.integers(0, SUBSCRIBER_DIGITS - 1, n).astype(np.int64)
    low, high = phones // pos % 10, phones // (pos * 10) % 10
    swap = (rng.random(n) < 0.5) & (low != high)
    substituted = phones + ((low + rng.integers(1, 10, n)) % 10 - low) * pos
    swapped = phones + (high - low) * pos + (low - high) * pos * 10
    return np.where(swap, swapped, substituted)


def _e164(phones: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Int64 numbers as '+<digits>' strings; null where ``mask`` is true."""
    digits = pc.cast(pa.array(phones, mask=mask), pa.string())
    return pc.binary_join_element_wise("+", digits, "")


def _uuids(n: int, rng: np.random.Generator) -> pa.Array:
    """``n`` random UUID-formatted strings (what App Set ID and identifierForVendor look like)."""
    hexed = np.frombuffer(rng.bytes(16 * n).hex().encode(), dtype=np.uint8).reshape(n, 32)
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    out[:, 0:8], out[:, 9:13], out[:, 14:18] = hexed[:, 0:8], hexed[:, 8:12], hexed[:, 12:16]
    out[:, 19:23], out[:, 24:36] = hexed[:, 16:20], hexed[:, 20:32]
    return pa.array(out.view("S36").ravel()).cast(pa.string())


def _masked(values: pa.Array, mask: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.nulls(len(values), values.type), values)


def _names(n: int, rng: np.random.Generator) -> pa.Array:
    first = pa.array(np.array(FIRST_NAMES)[rng.integers(0, len(FIRST_NAMES), n)])
    last = pa.array(np.array(LAST_NAMES)[rng.integers(0, len(LAST_NAMES), n)])
    return pc.binary_join_element_wise(first, last, " ")


def generate(spec: WorldSpec, seed: int = 0) -> World:
    """The world of ``spec``, the same for the same seed."""
    rng = np.random.default_rng(seed)
    cat = _catalogue(spec, rng)
    n_users, n_accounts = spec.users, spec.messenger_accounts
    n_both = round(spec.on_both * n_users)
    if n_both > n_accounts:
        raise ValueError(f"{n_both} parent users on the messenger, but only {n_accounts} messenger accounts")
    n_people = n_users + n_accounts - n_both  # parent users first, then messenger-only people

    # People and their handsets: the parent's apps see the handset as it is.
    # Changed numbers need fresh ones, drawn with the people's so that no one else holds them (only then: the
    # default world stays the same draw for the same seed).
    phones = _unique_phones(n_people + (n_accounts if spec.changed_number > 0 else 0), rng)
    phone, fresh = phones[:n_people], phones[n_people:]
    model, os_index = _draw_handsets(cat, n_people, rng)
    vendor = _uuids(n_people, rng)
    user_ids = np.arange(1, n_users + 1, dtype=np.int64)
    parent_vendor_hidden = rng.random(n_users) >= spec.vendor_id_seen
    users = pa.table(
        {
            "user_id": user_ids,
            "name": _names(n_users, rng),
            "phone_e164": _e164(phone[:n_users], rng.random(n_users) >= spec.parent_phone),
            "device_model": cat.model_names[model[:n_users]],
            "os_name": np.where(cat.model_ios[model[:n_users]], "ios", "android"),
            "os_version": cat.versions[os_index[:n_users]],
            "vendor_device_id": _masked(vendor[:n_users], parent_vendor_hidden),
            "birth_year": _birth_years(spec, n_users, rng),
        }
    )
    accounts = _messenger(spec, cat, rng, _People(phone, fresh, model, os_index, vendor), n_users, n_both)
    if spec.mean_degree <= 0:
        empty = pa.table({"a": pa.array([], pa.int64()), "b": pa.array([], pa.int64())})
        uploads = pa.table({"owner": pa.array([], pa.int64()), "phone_e164": pa.array([], pa.string())})
        blocks = pa.table({"blocker": pa.array([], pa.int64()), "blocked": pa.array([], pa.int64())})
        return World(users, accounts, empty, uploads, blocks)
    home, edges = _friendships(spec, n_users, rng)
    uploads = _contact_books(spec, n_users, edges, phone[:n_users], phone[n_users:], rng)
    blocks = _blocks(spec, home, rng)
    friendships = pa.table({"a": edges[:, 0] + 1, "b": edges[:, 1] + 1})
    return World(users, accounts, friendships, uploads, blocks)


def _birth_years(spec: WorldSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """Adults 18-80 skewed young, and a share of minors aged 13-17 (the age the parent's terms allow)."""
    adult = 18 + np.minimum(rng.gamma(2.0, 10.0, n), 62).astype(np.int64)
    age = np.where(rng.random(n) < spec.minors, rng.integers(13, 18, n), adult)
    return spec.year - age


@dataclass(frozen=True)
class _People:
    """Everyone's own number and handset (parent users first), and fresh numbers for changed ones."""

    phone: np.ndarray
    fresh: np.ndarray  # one unused number per messenger account (empty when no number changes)
    model: np.ndarray
    os_index: np.ndarray
    vendor: pa.Array


def _messenger(
    spec: WorldSpec, cat: _Handsets, rng: np.random.Generator, people: _People, n_users: int, n_both: int
) -> pa.Table:
    """The messenger's accounts: parent users on both networks, then messenger-only people, each perturbed.

    The phone states (no number, recycled, typo, changed) are exclusive, and so are the device states (shared
    handset, new device, two devices); an OS upgrade happens on the person's own handset only.
    """
    phone, model, os_index = people.phone, people.model, people.os_index
    n_people = len(phone)
    person = np.concatenate([rng.choice(n_users, n_both, replace=False), np.arange(n_users, n_people)])
    n = len(person)
    is_user = person < n_users
    other = rng.integers(0, n_users - is_user, n)  # another parent user: the recycled number's or handset's owner
    other += is_user & (other >= person)  # never the person themself

    u = rng.random(n)
    no_phone = u < spec.no_phone
    recycled = (u >= spec.no_phone) & (u < spec.no_phone + spec.recycled)
    typo = (u >= spec.no_phone + spec.recycled) & (u < spec.no_phone + spec.recycled + spec.typo)
    changed = (u >= spec.no_phone + spec.recycled + spec.typo) & (
        u < spec.no_phone + spec.recycled + spec.typo + spec.changed_number
    )
    acct_phone = np.where(recycled, phone[other], phone[person])
    acct_phone = np.where(typo, _with_typo(acct_phone, rng), acct_phone)

    v = rng.random(n)
    shared = v < spec.shared_handset
    new_device = (v >= spec.shared_handset) & (v < spec.shared_handset + spec.new_device)
    second = (v >= spec.shared_handset + spec.new_device) & (
        v < spec.shared_handset + spec.new_device + spec.two_devices
    )
    upgrade = ~shared & ~new_device & ~second & (rng.random(n) < spec.os_upgrade)
    new_model, new_os = _draw_handsets(cat, n, rng)
    moved = new_device | second  # on a handset the parent's app never saw
    acct_model = np.where(shared, model[other], np.where(moved, new_model, model[person]))
    acct_os = np.where(shared, os_index[other], np.where(moved, new_os, os_index[person]))
    # An upgrade moves to the next version of the family; at the newest, the parent's copy is the newer one.
    at_last = acct_os >= cat.family_last[acct_model]
    acct_os = np.where(upgrade, np.where(at_last, acct_os - 1, acct_os + 1), acct_os)
    handset_owner = np.where(shared, other, person)
    vendor_hidden = new_device | (~shared & (rng.random(n) >= spec.vendor_id_seen))
    acct_vendor = _masked(people.vendor.take(pa.array(handset_owner)), vendor_hidden)
    if spec.changed_number > 0:  # drawn only then, so that the default world stays the same draw
        stale = changed & (rng.random(n) < spec.changed_recycled)
        # The stale number's former owner is drawn apart from a shared handset's owner: else a quarter of the
        # shared handsets with a changed number would be that owner's handset and number, a copy of them.
        former = rng.integers(0, n_users - is_user, n)
        former += is_user & (former >= person)
        acct_phone = np.where(changed, np.where(stale, phone[former], people.fresh[:n]), acct_phone)
        recycled |= stale
    if spec.two_devices > 0:
        acct_vendor = pc.if_else(pa.array(second & ~vendor_hidden), _uuids(n, rng), acct_vendor)

    truth = pa.array(np.where(is_user, person + 1, 0), mask=~is_user)
    return pa.table(
        {
            "subject": _uuids(n, rng),
            "user_id": truth,
            "phone_e164": _e164(acct_phone, no_phone),
            "device_model": cat.model_names[acct_model],
            "os_name": np.where(cat.model_ios[acct_model], "ios", "android"),
            "os_version": cat.versions[acct_os],
            "vendor_device_id": acct_vendor,
            "no_phone": no_phone,
            "typo": typo,
            "recycled": recycled,
            "changed_number": changed,
            "new_device": new_device,
            "shared_handset": shared,
            "two_devices": second,
            "os_upgrade": upgrade,
        }
    )


def _friendships(spec: WorldSpec, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Planted overlapping communities (an affiliation graph): (home group of each user, edges (a, b), a < b).

    Users live on a ring (a stand-in for geography) and join groups near them: family, a class, a team, a
    workplace. The number of groups a user joins is lognormal, so degrees are heavy-tailed; group sizes follow a
    power law with exponent 1. Two members of a group are friends with a probability that keeps about
    ``friends_per_group`` friends per membership: small groups are near-cliques, big ones sparse. Overlapping
    groups of neighbours give the clustering real graphs have (Yang & Leskovec's AGM), which is what a
    friends-of-friends predictor relies on.
    """
    sigma = spec.degree_sigma
    lo, hi = spec.group_sizes  # memberships are uniform over sizes when p(s) ∝ 1/s
    per_group = np.minimum(spec.friends_per_group, 0.95 * (np.linspace(lo, hi, 1000) - 1)).mean()
    groups_per_user = spec.mean_degree / per_group
    joins = rng.lognormal(np.log(groups_per_user) - sigma**2 / 2, sigma, n)
    joins = np.clip(np.rint(joins), 1, max(1, int(spec.max_degree // per_group))).astype(np.int64)
    sizes = _power_law_sizes(int(joins.sum()), spec.group_sizes, rng)
    ends = np.cumsum(sizes) * (n / sizes.sum())  # each group covers an arc as long as its share of joins
    member = np.repeat(np.arange(n), joins)
    first = np.searchsorted(member, np.arange(n))
    # The first join is the group at the user's own place (home); others are a little way along the ring.
    away = rng.normal(0, spec.locality, len(member))
    away[first] = 0
    group = np.minimum(np.searchsorted(ends, (member + away) % n, side="right"), len(sizes) - 1)
    home = group[first]

    order = np.argsort(group, kind="stable")
    member, group = member[order], group[order]
    start = np.searchsorted(group, np.arange(len(sizes) + 1))
    size = np.diff(start)
    density = np.minimum(spec.friends_per_group / np.maximum(size - 1, 1), 0.95)
    pairs = rng.poisson(-np.log1p(-density) * size * (size - 1) / 2)  # drawn with replacement: cover density
    in_group = np.repeat(np.arange(len(size)), pairs)
    a = member[start[in_group] + (rng.random(len(in_group)) * size[in_group]).astype(np.int64)]
    b = member[start[in_group] + (rng.random(len(in_group)) * size[in_group]).astype(np.int64)]
    edges = np.stack([a, b], axis=1)
    edges = np.sort(edges[edges[:, 0] != edges[:, 1]], axis=1)
    keys = _distinct(edges[:, 0] * n + edges[:, 1])
    return home, np.stack([keys // n, keys % n], axis=1)


def _power_law_sizes(n: int, bounds: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Group sizes with p(s) ∝ 1/s between ``bounds``, summing to ``n``."""
    lo, hi = bounds
    sizes = np.floor(lo * (hi / lo) ** rng.random(2 * n // lo + 1)).astype(np.int64)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]
    sizes[-1] -= sizes.sum() - n
    return sizes


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a plain sort: numpy's hash-based unique is several times slower here)."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


def _contact_books(
    spec: WorldSpec,
    n: int,
    edges: np.ndarray,
    user_phones: np.ndarray,
    messenger_only: np.ndarray,
    rng: np.random.Generator,
) -> pa.Table:
    """Uploaded books: part of the uploader's friends' numbers, numbers of people on neither network, and of
    messenger-only people. Numbers are the people's real ones (their own handset), not what either app has."""
    uploader = rng.random(n) < spec.uploaders
    both_ways = np.concatenate([edges, edges[:, ::-1]])
    keep = uploader[both_ways[:, 0]] & (rng.random(len(both_ways)) < spec.friends_in_book)
    friends = both_ways[keep]
    owners = np.flatnonzero(uploader)
    n_strangers = rng.poisson(spec.non_users_in_book, len(owners))
    pool = _unique_phones(max(1, int(n_strangers.sum()) // 3), rng)  # a non-user is in ~3 books
    pool = pool[~np.isin(pool, user_phones)]
    pool = pool[~np.isin(pool, messenger_only)]
    n_mo = rng.poisson(spec.messenger_only_in_book if len(messenger_only) else 0, len(owners))
    owner = np.concatenate([friends[:, 0], np.repeat(owners, n_strangers), np.repeat(owners, n_mo)])
    numbers = np.concatenate(
        [
            user_phones[friends[:, 1]],
            pool[rng.integers(0, len(pool), int(n_strangers.sum()))],
            messenger_only[rng.integers(0, max(1, len(messenger_only)), int(n_mo.sum()))],
        ]
    )
    order = np.lexsort((numbers, owner))
    owner, numbers = owner[order], numbers[order]
    first = np.ones(len(owner), dtype=bool)
    first[1:] = (owner[1:] != owner[:-1]) | (numbers[1:] != numbers[:-1])
    return pa.table({"owner": owner[first] + 1, "phone_e164": _e164(numbers[first])})


def _blocks(spec: WorldSpec, home: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """A few users each block someone of their home group: the people a suggestion would otherwise offer."""
    blocker = np.flatnonzero(rng.random(len(home)) < spec.blockers)
    members = np.argsort(home, kind="stable")
    start = np.searchsorted(home[members], home[blocker])
    size = np.bincount(home)[home[blocker]]
    blocked = members[start + rng.integers(0, size)]
    keep = blocked != blocker
    pairs = np.unique(np.stack([blocker[keep], blocked[keep]], axis=1), axis=0)
    return pa.table({"blocker": pairs[:, 0] + 1, "blocked": pairs[:, 1] + 1})
