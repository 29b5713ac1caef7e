"""Storage policies: the shipped default, value parsers, lookup order, and one case per finding code."""

from datetime import timedelta
from pathlib import Path

import pytest

from preserve.config import default_settings
from preserve.policy import (Policy, Size, TierPolicy, load_policy, parse_duration, parse_rate, parse_size,
                             policy_search_dirs, shipped_policies_dir)

REPO = Path(__file__).resolve().parents[1]
TIERS = default_settings()["tiers"]

GOOD = """\
copies:
  tiers: [primary, secondary, offsite]
  required: 3
  minimum: 2
verify_after_write: true
auto_repair: true
tiers:
  primary: {audit_interval: 30d, io_budget: 100MiB/s, min_free: 10%}
  offsite: {audit_interval: 180d, check_parts: 12}
"""


def _load(tmp_path, text, tiers=None):
    p = tmp_path / "p.yaml"
    p.write_text(text, encoding="utf-8")
    return load_policy(str(p), TIERS if tiers is None else tiers, [])


def _only(findings, code):
    got = [f for f in findings if f.code == code]
    assert got, f"{code} not raised; got {[f.code for f in findings]}"
    return got[0]


def _check(finding, *values):
    """The finding renders in both languages, with no placeholder left and the offending values in both."""
    for msg in (finding.message_vi, finding.message_en):
        assert msg and "{" not in msg, finding.to_dict()
        for v in values:
            assert str(v) in msg, (v, msg)
    assert finding.message_vi != finding.message_en


# ---- the shipped default ----------------------------------------------------------------------------------
def test_shipped_default_loads_cleanly_with_the_init_tiers():
    policy, findings = load_policy("default", TIERS, [shipped_policies_dir()])
    assert findings == [] and policy is not None
    assert policy.name == "default"
    assert policy.copy_tiers == ["primary", "secondary", "offsite"]
    assert (policy.copies_required, policy.copies_minimum) == (3, 2)
    assert policy.verify_after_write is True and policy.auto_repair is True
    assert policy.tier("primary").audit_interval == timedelta(days=30)
    assert policy.tier("secondary").audit_interval == timedelta(days=90)
    assert policy.tier("offsite").audit_interval == timedelta(days=180)
    assert policy.tier("offsite").check_parts == 12
    assert policy.tier("primary").io_budget == 100 * 2**20
    assert policy.tier("offsite").io_budget == 20 * 2**20
    for t in policy.copy_tiers:
        assert policy.tier(t).min_free_percent == 10.0 and policy.tier(t).min_free_bytes is None
    assert Path(policy.source) == shipped_policies_dir() / "default.yaml"


def test_default_search_dirs_are_the_shipped_ones():
    policy, findings = load_policy("default", TIERS)
    assert policy is not None and findings == []


def test_project_copies_equal_the_packaged_ones():
    packaged = sorted(p.name for p in shipped_policies_dir().glob("*.yaml"))
    assert "default.yaml" in packaged and "local-only.yaml" in packaged
    assert sorted(p.name for p in (REPO / "storage_policies").glob("*.yaml")) == packaged
    for name in packaged:
        assert (REPO / "storage_policies" / name).read_bytes() == (shipped_policies_dir() / name).read_bytes(), \
            f"storage_policies/{name} and preserve/data/storage_policies/{name} must be identical"


def test_local_only_policy_warns_that_there_is_no_offsite_copy():
    local = {k: v for k, v in TIERS.items() if v["kind"] == "local"}
    policy, findings = load_policy("local-only", local)
    assert policy is not None and policy.copy_tiers == ["primary", "secondary"]
    assert [f.code for f in findings] == ["W-POL-NO-OFFSITE"]


def test_unlisted_tier_gets_the_defaults():
    policy, _ = load_policy("default", TIERS)
    t = policy.tier("elsewhere")
    assert t == TierPolicy("elsewhere", timedelta(days=30), None, None, 10.0, 12)


def test_missing_tier_keys_take_defaults(tmp_path):
    policy, findings = _load(tmp_path, GOOD)
    assert findings == []
    assert policy.tier("offsite").io_budget is None and policy.tier("offsite").min_free_percent == 10.0
    assert policy.tier("secondary") == TierPolicy("secondary")


def test_required_and_minimum_default_from_the_tier_list(tmp_path):
    policy, findings = _load(tmp_path, "copies:\n  tiers: [primary, offsite]\n")
    assert findings == [] and (policy.copies_required, policy.copies_minimum) == (2, 2)


# ---- lookup order -----------------------------------------------------------------------------------------
def test_repository_policy_overrides_the_shipped_one(tmp_path):
    own = tmp_path / "repo" / "storage_policies"
    own.mkdir(parents=True)
    (own / "default.yaml").write_text("copies:\n  tiers: [primary, secondary, offsite]\n  required: 3\n"
                                      "  minimum: 3\nauto_repair: false\n", encoding="utf-8")
    dirs = policy_search_dirs(tmp_path / "repo")
    assert dirs == [own, shipped_policies_dir()]
    policy, findings = load_policy("default", TIERS, dirs)
    assert findings == [] and policy.source == str(own / "default.yaml")
    assert policy.copies_minimum == 3 and policy.auto_repair is False
    # a name only the shipped folder has still falls through to it
    (own / "default.yaml").unlink()
    policy, _ = load_policy("default", TIERS, dirs)
    assert policy.source == str(shipped_policies_dir() / "default.yaml")


def test_not_found_lists_where_it_looked(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    policy, findings = load_policy("tiet-kiem", TIERS, [a, b])
    assert policy is None
    f = _only(findings, "E-POL-NOT-FOUND")
    assert f.is_error
    _check(f, "tiet-kiem", a / "tiet-kiem.yaml", b / "tiet-kiem.yaml")


def test_a_path_is_read_directly(tmp_path):
    p = tmp_path / "khac.yaml"
    p.write_text(GOOD, encoding="utf-8")
    policy, findings = load_policy(str(p), TIERS, [])
    assert findings == [] and policy.name == "khac"


# ---- one case per finding code ----------------------------------------------------------------------------
def test_unreadable_yaml(tmp_path):
    policy, findings = _load(tmp_path, "copies: [primary\n")
    assert policy is None
    _check(_only(findings, "E-POL-UNREADABLE"))


def test_not_a_mapping(tmp_path):
    policy, findings = _load(tmp_path, "- primary\n- secondary\n")
    assert policy is None
    _check(_only(findings, "E-POL-UNREADABLE"), "list")


def test_unknown_key_is_a_warning(tmp_path):
    policy, findings = _load(tmp_path, "auto_repare: true\n" + GOOD + "  secondary: {audit_intervall: 9d}\n")
    assert policy is not None
    keys = {f.params["key"] for f in findings if f.code == "W-POL-KEY-UNKNOWN"}
    assert keys == {"auto_repare", "tiers.secondary.audit_intervall"}
    f = _only(findings, "W-POL-KEY-UNKNOWN")
    assert not f.is_error
    _check(f, "auto_repare")


def test_missing_copy_tiers(tmp_path):
    policy, findings = _load(tmp_path, "copies:\n  required: 2\n")
    assert policy is None
    _check(_only(findings, "E-POL-KEY-MISSING"), "copies.tiers")


def test_wrong_value_types(tmp_path):
    policy, findings = _load(tmp_path, GOOD.replace("required: 3", "required: ba").replace(
        "auto_repair: true", "auto_repair: có"))
    assert policy is None
    got = {f.params["key"]: f for f in findings if f.code == "E-POL-VALUE"}
    assert set(got) == {"copies.required", "auto_repair"}
    _check(got["copies.required"], "ba", "copies.required")
    _check(got["auto_repair"], "có", "true")
    assert "số nguyên" in got["copies.required"].message_vi and "whole number" in got["copies.required"].message_en


def test_tier_not_declared(tmp_path):
    policy, findings = _load(tmp_path, GOOD.replace("offsite]", "bang-tu]") + "  kho-b: {audit_interval: 7d}\n")
    assert policy is None
    tiers = sorted(f.params["tier"] for f in findings if f.code == "E-POL-TIER-UNDECLARED")
    assert tiers == ["bang-tu", "kho-b"]
    _check(_only(findings, "E-POL-TIER-UNDECLARED"), "bang-tu", "primary, secondary, offsite")


def test_tier_listed_twice(tmp_path):
    policy, findings = _load(tmp_path, GOOD.replace("[primary, secondary, offsite]",
                                                    "[primary, secondary, primary, offsite]"))
    assert policy is None
    _check(_only(findings, "E-POL-TIER-DUPLICATE"), "primary")


def test_required_more_than_tiers(tmp_path):
    policy, findings = _load(tmp_path, GOOD.replace("required: 3", "required: 4"))
    assert policy is None
    _check(_only(findings, "E-POL-COPIES-EXCEED-TIERS"), 4, 3)


def test_minimum_more_than_required(tmp_path):
    policy, findings = _load(tmp_path, GOOD.replace("minimum: 2", "minimum: 3").replace("required: 3", "required: 2"))
    assert policy is None
    _check(_only(findings, "E-POL-MINIMUM-EXCEEDS-REQUIRED"), 3, 2)


@pytest.mark.parametrize("key", ["required", "minimum"])
def test_copies_below_one(tmp_path, key):
    policy, findings = _load(tmp_path, GOOD.replace(f"{key}: ", f"{key}: 0 #"))
    assert policy is None
    f = _only(findings, "E-POL-COPIES-NOT-POSITIVE")
    assert f.params["key"] == f"copies.{key}"
    _check(f, f"copies.{key}", 0)


def test_fewer_tiers_than_minimum(tmp_path):
    policy, findings = _load(tmp_path, "copies:\n  tiers: [primary]\n  required: 3\n  minimum: 2\n")
    assert policy is None
    _check(_only(findings, "E-POL-TIERS-BELOW-MINIMUM"), 1, 2, "primary")
    assert "E-POL-COPIES-EXCEED-TIERS" not in {f.code for f in findings}  # the one cause is reported once


def test_empty_tier_list(tmp_path):
    policy, findings = _load(tmp_path, "copies:\n  tiers: []\n")
    assert policy is None and "E-POL-TIERS-BELOW-MINIMUM" in {f.code for f in findings}


def test_bad_duration(tmp_path):
    policy, findings = _load(tmp_path, GOOD.replace("audit_interval: 30d", "audit_interval: 30 ngày"))
    assert policy is None
    f = _only(findings, "E-POL-DURATION")
    _check(f, "primary", "30 ngày")


def test_zero_duration(tmp_path):
    policy, findings = _load(tmp_path, GOOD.replace("audit_interval: 30d", "audit_interval: 0d"))
    assert policy is None
    _check(_only(findings, "E-POL-DURATION"), "primary", "0d")


def test_bad_rate(tmp_path):
    policy, findings = _load(tmp_path, GOOD.replace("100MiB/s", "nhanh"))
    assert policy is None
    _check(_only(findings, "E-POL-RATE"), "primary", "nhanh")


def test_bad_size(tmp_path):
    policy, findings = _load(tmp_path, GOOD.replace("min_free: 10%", "min_free: 50 GX"))
    assert policy is None
    _check(_only(findings, "E-POL-SIZE"), "primary", "50 GX")


def test_percent_out_of_range(tmp_path):
    policy, findings = _load(tmp_path, GOOD.replace("min_free: 10%", "min_free: 120%"))
    assert policy is None
    _check(_only(findings, "E-POL-PERCENT"), "primary", "120%")


@pytest.mark.parametrize("value", ["0", "-1", "mười hai", "1.5"])
def test_bad_check_parts(tmp_path, value):
    policy, findings = _load(tmp_path, GOOD.replace("check_parts: 12", f"check_parts: {value}"))
    assert policy is None
    _check(_only(findings, "E-POL-CHECK-PARTS"), "offsite", value)


def test_check_parts_on_a_local_tier_is_unused(tmp_path):
    policy, findings = _load(tmp_path, GOOD + "  secondary: {check_parts: 6}\n")
    assert policy is not None
    _check(_only(findings, "W-POL-CHECK-PARTS-UNUSED"), "secondary", "local")


def test_all_errors_are_reported_together(tmp_path):
    text = GOOD.replace("30d", "sau").replace("100MiB/s", "x").replace("10%", "200%").replace("check_parts: 12",
                                                                                              "check_parts: 0")
    policy, findings = _load(tmp_path, text)
    assert policy is None
    assert {"E-POL-DURATION", "E-POL-RATE", "E-POL-PERCENT", "E-POL-CHECK-PARTS"} <= {f.code for f in findings}


def test_verify_after_write_off_warns(tmp_path):
    policy, findings = _load(tmp_path, GOOD.replace("verify_after_write: true", "verify_after_write: false"))
    assert policy is not None and policy.verify_after_write is False
    f = _only(findings, "W-POL-NO-VERIFY")
    _check(f, "verify_after_write")
    assert "đọc lại" in f.message_vi and "read back" in f.message_en


def test_single_copy_tier_warns(tmp_path):
    policy, findings = _load(tmp_path, "copies:\n  tiers: [offsite]\n  required: 1\n  minimum: 1\n")
    assert policy is not None and [f.code for f in findings] == ["W-POL-SINGLE-COPY"]
    _check(findings[0], "offsite", 1)


def test_no_offsite_tier_warns(tmp_path):
    policy, findings = _load(tmp_path, "copies:\n  tiers: [primary, secondary]\n")
    assert policy is not None and [f.code for f in findings] == ["W-POL-NO-OFFSITE"]
    _check(findings[0], "primary, secondary")


def test_a_tier_marked_offsite_counts(tmp_path):
    tiers = {"primary": {"kind": "local"}, "nas-tinh": {"kind": "local", "offsite": True}}
    policy, findings = _load(tmp_path, "copies:\n  tiers: [primary, nas-tinh]\n", tiers)
    assert policy is not None and findings == []


def test_findings_are_json_ready(tmp_path):
    _, findings = _load(tmp_path, GOOD.replace("required: 3", "required: ba"))
    for f in findings:
        d = f.to_dict()
        assert d["message_vi"] and d["message_en"] and d["where"].startswith(str(tmp_path))


# ---- parsers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90)),
    ("2w", timedelta(weeks=2)), ("45s", timedelta(seconds=45)), ("1d12h", timedelta(days=1, hours=12)),
    (" 7 D ", timedelta(days=7)), ("0d", timedelta(0)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["30", 30, "", "d", "30 days", "1.5d", "-3d", "30y", None, True])
def test_parse_duration_refuses(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("text,expected", [
    ("100MiB/s", 100 * 2**20), ("20 MB/s", 20_000_000), ("1GiB/s", 2**30), ("512 kB/s", 512_000),
    ("500B/s", 500), ("1.5 MiB/s", 3 * 2**19), ("0", None), (0, None), ("unlimited", None), ("Unlimited", None),
    (1000, 1000), ("0 MiB/s", None),
])
def test_parse_rate(text, expected):
    assert parse_rate(text) == expected


@pytest.mark.parametrize("bad", ["100MiB", "nhanh", "20 Mb/s", "-5MB/s", "MB/s", -1, None, False, "100 MiB/h"])
def test_parse_rate_refuses(bad):
    with pytest.raises(ValueError):
        parse_rate(bad)


@pytest.mark.parametrize("text,expected", [
    ("50GiB", Size(50 * 2**30, None)), ("500 GB", Size(500 * 10**9, None)), ("1TiB", Size(2**40, None)),
    ("1048576", Size(1048576, None)), (4096, Size(4096, None)), ("10%", Size(None, 10.0)),
    ("12.5 %", Size(None, 12.5)), ("0%", Size(None, 0.0)), ("100%", Size(None, 100.0)),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["101%", "-1%", "mười%", "50 GX", "50Gb", "", None, True, -1, "%"])
def test_parse_size_refuses(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


def test_policy_dataclass_defaults():
    p = Policy("x", ["primary"], 1, 1)
    assert p.verify_after_write and p.auto_repair and p.tier("primary") == TierPolicy("primary")


# ---- through the CLI: `policy check`, and commands refusing a broken policy ---------------------------------
def _cli(*args):
    import os
    import subprocess
    import sys

    exe = str(Path(sys.executable).parent / "preserve")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"})


def test_policy_check_cli_and_a_broken_policy_stops_storage_commands(repo, batch):
    import json

    p = _cli("policy", "check", "--repo", repo.root, "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["policy"] == "local-only" and data["valid"] is True
    assert [f["code"] for f in data["findings"]] == ["W-POL-NO-OFFSITE"]
    assert data["summary"]["copy_tiers"] == ["primary", "secondary"]
    assert data["summary"]["tiers"]["secondary"]["audit_interval_seconds"] == 90 * 86400
    (repo.root / "storage_policies").mkdir()
    (repo.root / "storage_policies/local-only.yaml").write_text(
        "copies:\n  tiers: [primary, nas7]\n  minimum: 3\ntiers:\n  primary:\n    audit_interval: soon\n")
    p = _cli("policy", "check", "--repo", repo.root, "--json")
    assert p.returncode == 1
    codes = {f["code"] for f in json.loads(p.stdout)["findings"]}
    assert {"E-POL-TIER-UNDECLARED", "E-POL-MINIMUM-EXCEEDS-REQUIRED", "E-POL-DURATION"} <= codes
    p = _cli("policy", "check", "--repo", repo.root)
    assert p.returncode == 1 and "nas7" in p.stdout and "KHÔNG HỢP LỆ" in p.stdout
    for cmd in (["replicate"], ["tiers", "status"], ["ingest", batch]):
        p = _cli(*cmd, "--repo", repo.root)
        assert p.returncode == 2, (cmd, p.stdout, p.stderr)
        assert "E-POL-TIER-UNDECLARED" in p.stderr and "policy check" in p.stderr
    assert repo.list_aips() == [], "nothing was stored under a broken policy"
