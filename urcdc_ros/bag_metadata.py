"""rosbag2 metadata that a given ROS 2 distribution's ``ros2 bag`` reads.

    python -m urcdc_ros.bag_metadata --ros-distro humble BAG    # make an existing bag readable on Humble

rosbag2 reads every older metadata version, never a newer one's changed fields. Humble's rosbag2
(0.15) writes and reads version 5; Jazzy and Kilted write version 9, in which each topic's
``offered_qos_profiles`` became a YAML list with named enums, which Humble's parser rejects ("bad
conversion"; ros2/rosbag2#2013). rosbags writes versions 8 and 9 only, so a bag for Humble is
written as version 8 (QoS still the string Humble parses) and its metadata rewritten here with
exactly Humble's fields:

- ``rosbag2_bagfile_information``: version, storage_identifier, duration {nanoseconds},
  starting_time {nanoseconds_since_epoch}, message_count, topics_with_message_count,
  compression_format, compression_mode, relative_file_paths, files (version 5 added files:
  path, starting_time, duration, message_count);
- each topic: ``topic_metadata`` {name, type, serialization_format, offered_qos_profiles as a YAML
  string with integer rmw enums} and message_count.

Versions 6–9 added custom_data (6), type_description_hash (7), ros_distro (8) and the structured
QoS (9); they are dropped. The payload (the .mcap or .db3 file) is not touched: Humble's sqlite3
plugin only queries the columns it knows (extra tables and columns are ignored) and its MCAP plugin
reads schemas and channels. For sqlite3 the copy of the metadata stored in the database is rewritten
too. The MCAP file's own metadata record keeps rosbags' version-8 text, which Humble's plugin does
not read and newer ones only use when metadata.yaml is missing.
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Sequence

import yaml

# The metadata version each distro's rosbag2 writes (and the newest it reads).
DISTRO_METADATA_VERSION = {"humble": 5, "jazzy": 9, "kilted": 9}
ROS_DISTROS = tuple(DISTRO_METADATA_VERSION)
HUMBLE_FIELDS = ("version", "storage_identifier", "duration", "starting_time", "message_count",
                 "topics_with_message_count", "compression_format", "compression_mode", "relative_file_paths",
                 "files")
HUMBLE_TOPIC_FIELDS = ("name", "type", "serialization_format", "offered_qos_profiles")
HUMBLE_FILE_FIELDS = ("path", "starting_time", "duration", "message_count")
HUMBLE_QOS_FIELDS = ("history", "depth", "reliability", "durability", "deadline", "lifespan", "liveliness",
                     "liveliness_lease_duration", "avoid_ros_namespace_conventions")
METADATA_FILE = "metadata.yaml"
TOP_KEY = "rosbag2_bagfile_information"


class BagMetadataError(ValueError):
    """A metadata.yaml that cannot be converted; the message names the file and the field."""


def rosbags_writer_version(distro: str) -> int:
    """The version to have rosbags write for ``distro`` (before ``write_for_distro`` rewrites it)."""
    check_distro(distro)
    return 8 if DISTRO_METADATA_VERSION[distro] < 8 else DISTRO_METADATA_VERSION[distro]


def check_distro(distro: str) -> None:
    if distro not in DISTRO_METADATA_VERSION:
        raise BagMetadataError(f"ROS distro '{distro}': choose one of {', '.join(ROS_DISTROS)}")


def humble_metadata(info: dict, where: str = METADATA_FILE) -> dict:
    """``info`` (the rosbag2_bagfile_information of any version) with exactly Humble's version-5 fields."""
    missing = [name for name in HUMBLE_FIELDS if name not in info and name != "files"]
    if missing:
        raise BagMetadataError(f"{where}: no {', '.join(missing)}; not rosbag2 metadata")
    out = {name: info.get(name) for name in HUMBLE_FIELDS}
    out["version"] = 5
    out["files"] = [{name: entry[name] for name in HUMBLE_FILE_FIELDS} for entry in info.get("files") or []]
    out["topics_with_message_count"] = [
        {"topic_metadata": {name: _humble_topic_field(topic["topic_metadata"], name, where)
                            for name in HUMBLE_TOPIC_FIELDS},
         "message_count": topic["message_count"]}
        for topic in info["topics_with_message_count"]]
    return out


def _humble_topic_field(topic: dict, name: str, where: str):
    value = topic.get(name, "" if name == "offered_qos_profiles" else None)
    if value is None:
        raise BagMetadataError(f"{where}: topic {topic.get('name', '?')} has no {name}")
    return _humble_qos_string(value, where) if name == "offered_qos_profiles" else value


def _humble_qos_string(profiles, where: str) -> str:
    """QoS as Humble writes it: a YAML string, rmw's integer enums, its field order.

    Accepts the string of versions 4–8 or the list of version 9 (enums by name).
    """
    from rosbags.rosbag2.metadata import dump_qos_v8, parse_qos

    try:
        text = profiles if isinstance(profiles, str) else dump_qos_v8(parse_qos(profiles))
        entries = yaml.safe_load(text) or []
        ordered = [{name: ({"sec": entry[name]["sec"], "nsec": entry[name]["nsec"]}
                           if isinstance(entry[name], dict) else entry[name])
                    for name in HUMBLE_QOS_FIELDS} for entry in entries]
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as error:
        raise BagMetadataError(f"{where}: offered_qos_profiles {profiles!r} is not rosbag2 QoS ({error})") from error
    return yaml.safe_dump(ordered, sort_keys=False).strip() if ordered else ""


def write_for_distro(bag_dir: str | Path, distro: str) -> dict:
    """Rewrite ``bag_dir``'s metadata for ``distro`` when it needs an older version; returns the metadata."""
    check_distro(distro)
    bag_dir = Path(bag_dir)
    path = bag_dir / METADATA_FILE
    if not path.is_file():
        raise BagMetadataError(f"{path}: missing; not a rosbag2 folder")
    info = (yaml.safe_load(path.read_text()) or {}).get(TOP_KEY)
    if not isinstance(info, dict):
        raise BagMetadataError(f"{path}: no '{TOP_KEY}' section")
    target = DISTRO_METADATA_VERSION[distro]
    if int(info.get("version", 0)) <= target:
        return info  # every distro reads older versions
    if target != 5:
        raise BagMetadataError(f"{path}: version {info['version']} cannot be converted to {target}")
    info = humble_metadata(info, str(path))
    text = yaml.safe_dump({TOP_KEY: info}, sort_keys=False, default_flow_style=False)
    temporary = path.with_suffix(".yaml.tmp")
    temporary.write_text(text)
    temporary.replace(path)
    if info["storage_identifier"] == "sqlite3":
        for name in info["relative_file_paths"]:
            _rewrite_stored_metadata(bag_dir / Path(name).name, info)
    return info


def _rewrite_stored_metadata(db_path: Path, info: dict) -> None:
    """The copy of the metadata newer sqlite3 plugins keep in the database (Humble has no such table)."""
    if not db_path.is_file():
        return
    connection = sqlite3.connect(db_path)
    try:
        has_table = connection.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='metadata'").fetchone()
        if has_table:
            connection.execute("UPDATE metadata SET metadata_version = ?, metadata = ?",
                               (info["version"], yaml.safe_dump(info, sort_keys=False).strip()))
            connection.commit()
    finally:
        connection.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m urcdc_ros.bag_metadata",
                                     description="Rewrite a rosbag2 folder's metadata for an older ROS 2 distro.")
    parser.add_argument("--ros-distro", required=True, choices=ROS_DISTROS)
    parser.add_argument("bags", nargs="+", type=Path, help="rosbag2 folders (with metadata.yaml)")
    args = parser.parse_args(argv)
    try:
        for bag in args.bags:
            info = write_for_distro(bag, args.ros_distro)
            print(f"{bag}: metadata version {info['version']} ({args.ros_distro} reads it)")
    except BagMetadataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
