#!/usr/bin/env python3
"""Validates META.json against the PGXN Meta Spec 1.0.0 and the release's versions.

PGXN::Meta::Validator (Perl, CPAN only: not packaged in Debian) is not used;
this checks the spec's rules itself (https://pgxn.org/meta/spec.txt, as in
the v1 JSON schemas of github.com/pgxn/meta): the required keys and their
types, the license names, SemVer versions and version ranges, terms, tags,
prereqs phases and relationships, resources, no_index, and that no other
top-level key is present (except x_/X_ custom keys).

It also checks the versions of the release against each other:
  - META.json's version == every provides.*.version
  - == the upstream part of debian/changelog's version
  - == crm_native.control's default_version (and the Makefile's EXTVERSION),
    except while the release is being prepared: when debian/changelog's top
    entry is UNRELEASED, META.json may be ahead of the control file (a NOTE
    is printed), never behind.

Usage: test/meta_json.py [ROOT]   (exit 0 when valid; prints PASS/FAIL lines)
"""
import json
import os
import re
import sys
import unicodedata

LICENSES = {
    "agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd",
    "freebsd", "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1",
    "lgpl_3_0", "mit", "mozilla_1_0", "mozilla_1_1", "openssl", "perl_5",
    "postgresql", "qpl_1_0", "ssleay", "sun", "zlib", "open_source",
    "restricted", "unrestricted", "unknown",
}
SEMVER = (r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
          r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
          r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?")
SEMVER_RE = re.compile(r"^" + SEMVER + r"$")
RANGE_ITEM_RE = re.compile(r"^(?:(?:[=!]=|[<>]=?)\s*)?" + SEMVER + r"$")
TOP_KEYS = {"name", "version", "abstract", "maintainer", "license", "provides",
            "meta-spec", "description", "generated_by", "tags", "no_index",
            "prereqs", "release_status", "resources"}
REQUIRED = ["name", "version", "abstract", "maintainer", "license", "provides", "meta-spec"]
PHASES = {"configure", "build", "test", "runtime", "develop"}
RELATIONSHIPS = {"requires", "recommends", "suggests", "conflicts"}

errors = []


def err(path, msg):
    errors.append(f"{path}: {msg}")


def custom(key):
    return re.match(r"^[xX]_.", key) is not None


def is_str(v, path, min_len=1):
    if not isinstance(v, str) or len(v) < min_len:
        err(path, f"must be a string of at least {min_len} character(s)")
        return False
    return True


def control_chars(s):
    return any(unicodedata.category(c) == "Cc" for c in s)


def check_term(v, path):
    if is_str(v, path, 2) and (any(c in "/\\" or c.isspace() for c in v) or control_chars(v)):
        err(path, f"{v!r} is not a term (no slash, backslash, space or control character)")


def check_version(v, path):
    if not isinstance(v, str) or not SEMVER_RE.match(v):
        err(path, f"{v!r} is not a SemVer version")


def check_range(v, path):
    if v == 0 and not isinstance(v, bool):
        return
    if not isinstance(v, str) or not all(RANGE_ITEM_RE.match(p.strip()) for p in v.split(",")):
        err(path, f"{v!r} is not a version range (0, or [op] SemVer, comma-separated)")


def check_keys(obj, path, allowed):
    for k in obj:
        if k not in allowed and not custom(k):
            err(path, f"unknown key {k!r}")


def check_path(v, path, root):
    if is_str(v, path, 2):
        if v.startswith("/") or "\\" in v:
            err(path, f"{v!r} must be a relative path with unix conventions")
        elif not os.path.exists(os.path.join(root, v)):
            err(path, f"{v!r} does not exist in the distribution")


def validate(meta, root):
    if not isinstance(meta, dict):
        err("META.json", "must be an object")
        return
    for k in REQUIRED:
        if k not in meta:
            err("META.json", f"missing mandatory key {k!r}")
    check_keys(meta, "META.json", TOP_KEYS)

    if "name" in meta:
        check_term(meta["name"], "name")
    if "version" in meta:
        check_version(meta["version"], "version")
    if "abstract" in meta:
        is_str(meta["abstract"], "abstract")
    for k in ("description", "generated_by"):
        if k in meta:
            is_str(meta[k], k)

    m = meta.get("maintainer")
    if m is not None:
        if isinstance(m, list):
            if not m or len(set(map(str, m))) != len(m):
                err("maintainer", "must be a non-empty list of distinct strings")
            for i, x in enumerate(m):
                is_str(x, f"maintainer[{i}]")
        else:
            is_str(m, "maintainer")

    lic = meta.get("license")
    if lic is not None:
        if isinstance(lic, str):
            if lic not in LICENSES:
                err("license", f"{lic!r} is not a license name of the spec")
        elif isinstance(lic, list):
            if not lic:
                err("license", "empty list")
            for x in lic:
                if x not in LICENSES:
                    err("license", f"{x!r} is not a license name of the spec")
        elif isinstance(lic, dict):
            if not lic:
                err("license", "empty object")
            for k, url in lic.items():
                if not isinstance(url, str) or not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url):
                    err(f"license.{k}", "must be a URI")
        else:
            err("license", "must be a string, a list or an object")

    prov = meta.get("provides")
    if prov is not None:
        if not isinstance(prov, dict) or not prov:
            err("provides", "must be a non-empty object")
        else:
            for ext, spec in prov.items():
                p = f"provides.{ext}"
                check_term(ext, p)
                if not isinstance(spec, dict):
                    err(p, "must be an object")
                    continue
                check_keys(spec, p, {"file", "version", "abstract", "docfile", "docpath"})
                for k in ("file", "version"):
                    if k not in spec:
                        err(p, f"missing mandatory key {k!r}")
                if "file" in spec:
                    check_path(spec["file"], p + ".file", root)
                if "docfile" in spec:
                    check_path(spec["docfile"], p + ".docfile", root)
                if "version" in spec:
                    check_version(spec["version"], p + ".version")
                if "abstract" in spec:
                    is_str(spec["abstract"], p + ".abstract")

    ms = meta.get("meta-spec")
    if ms is not None:
        if not isinstance(ms, dict) or "version" not in ms:
            err("meta-spec", "must be an object with a version")
        else:
            check_keys(ms, "meta-spec", {"version", "url"})
            if not re.match(r"^1\.0\.\d+$", str(ms["version"])):
                err("meta-spec.version", "must be 1.0.x")
            if "url" in ms and ms["url"] not in ("https://pgxn.org/meta/spec.txt", "http://pgxn.org/meta/spec.txt"):
                err("meta-spec.url", "must be the spec's URL")

    tags = meta.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or not tags or len(set(map(str, tags))) != len(tags):
            err("tags", "must be a non-empty list of distinct tags")
        else:
            for i, t in enumerate(tags):
                if not isinstance(t, str) or not 2 <= len(t) <= 255 or any(c in "/\\" for c in t) or control_chars(t):
                    err(f"tags[{i}]", f"{t!r}: 2 to 255 characters, no slash, backslash or control character")

    rs = meta.get("release_status")
    if rs is not None and rs not in ("stable", "testing", "unstable"):
        err("release_status", "must be stable, testing or unstable")

    ni = meta.get("no_index")
    if ni is not None:
        if not isinstance(ni, dict) or not ({"file", "directory"} & set(ni)):
            err("no_index", "must be an object with file and/or directory")
        else:
            check_keys(ni, "no_index", {"file", "directory"})
            for k in ("file", "directory"):
                v = ni.get(k)
                if v is None:
                    continue
                items = [v] if isinstance(v, str) else v
                if not isinstance(items, list) or not items or not all(isinstance(x, str) and x for x in items):
                    err(f"no_index.{k}", "must be a path or a non-empty list of paths")

    pr = meta.get("prereqs")
    if pr is not None:
        if not isinstance(pr, dict) or not (PHASES & set(pr)):
            err("prereqs", "must be an object with at least one phase")
        else:
            check_keys(pr, "prereqs", PHASES)
            for phase, rels in pr.items():
                if custom(phase):
                    continue
                p = f"prereqs.{phase}"
                if not isinstance(rels, dict) or not (RELATIONSHIPS & set(rels)):
                    err(p, "must be an object with at least one relationship")
                    continue
                check_keys(rels, p, RELATIONSHIPS)
                for rel, deps in rels.items():
                    if custom(rel):
                        continue
                    if not isinstance(deps, dict) or not deps:
                        err(f"{p}.{rel}", "must be a non-empty object")
                        continue
                    for name, rng in deps.items():
                        check_term(name, f"{p}.{rel} key")
                        check_range(rng, f"{p}.{rel}.{name}")

    res = meta.get("resources")
    if res is not None:
        if not isinstance(res, dict) or not ({"homepage", "bugtracker", "repository"} & set(res)):
            err("resources", "must name a homepage, bugtracker or repository")
        else:
            check_keys(res, "resources", {"homepage", "bugtracker", "repository"})
            if "bugtracker" in res:
                bt = res["bugtracker"]
                if not isinstance(bt, dict) or not ({"web", "mailto"} & set(bt)):
                    err("resources.bugtracker", "needs web or mailto")
                else:
                    check_keys(bt, "resources.bugtracker", {"web", "mailto"})
            if "repository" in res:
                rp = res["repository"]
                if not isinstance(rp, dict) or not ({"url", "type"} <= set(rp) or "web" in rp):
                    err("resources.repository", "needs url and type, or web")
                else:
                    check_keys(rp, "resources.repository", {"url", "web", "type"})
                    if "type" in rp and not re.match(r"^[a-z]+$", str(rp["type"])):
                        err("resources.repository.type", "must be lower-case letters")


def read_control_version(root):
    with open(os.path.join(root, "crm_native.control")) as f:
        m = re.search(r"^\s*default_version\s*=\s*'([^']+)'", f.read(), re.M)
    return m.group(1) if m else None


def read_makefile_version(root):
    with open(os.path.join(root, "Makefile")) as f:
        m = re.search(r"^EXTVERSION\s*=\s*(\S+)", f.read(), re.M)
    return m.group(1) if m else None


def read_changelog(root):
    with open(os.path.join(root, "debian", "changelog")) as f:
        m = re.match(r"^\S+ \(([^)]+)\) ([^;]+);", f.readline())
    if not m:
        return None, None
    version, dist = m.group(1), m.group(2).strip()
    upstream = version.split(":", 1)[-1].rsplit("-", 1)[0]
    return upstream, dist


def semver_key(v):
    m = SEMVER_RE.match(v or "")
    return tuple(int(m.group(i)) for i in (1, 2, 3)) if m else None


def check_versions(meta, root):
    notes = []
    version = meta.get("version")
    for ext, spec in (meta.get("provides") or {}).items():
        if isinstance(spec, dict) and spec.get("version") != version:
            err(f"provides.{ext}.version", f"{spec.get('version')!r} differs from version {version!r}")
    control = read_control_version(root)
    make = read_makefile_version(root)
    if control != make:
        err("crm_native.control", f"default_version {control!r} differs from the Makefile's EXTVERSION {make!r}")
    upstream, dist = read_changelog(root)
    if upstream is None:
        err("debian/changelog", "cannot read the top entry's version")
    elif upstream != version:
        err("debian/changelog", f"upstream version {upstream!r} differs from META.json's {version!r}")
    if control != version:
        ahead = semver_key(version) and semver_key(control) and semver_key(version) > semver_key(control)
        if dist == "UNRELEASED" and ahead:
            notes.append(f"NOTE: release {version} in preparation (debian/changelog UNRELEASED): "
                         f"crm_native.control's default_version is still {control}")
        else:
            err("version", f"META.json's {version!r} differs from crm_native.control's default_version {control!r}")
    return notes


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    try:
        with open(os.path.join(root, "META.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        print(f"FAIL: META.json: {e}")
        return 1
    validate(meta, root)
    spec_errors = len(errors)
    for e in errors:
        print(f"FAIL: {e}")
    print("PASS: META.json follows the PGXN Meta Spec 1.0.0" if spec_errors == 0 else
          f"FAIL: META.json: {spec_errors} spec violation(s)")
    notes = check_versions(meta, root) if isinstance(meta, dict) else []
    for e in errors[spec_errors:]:
        print(f"FAIL: {e}")
    for n in notes:
        print(n)
    if len(errors) == spec_errors:
        print(f"PASS: versions agree (META.json {meta.get('version')})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
